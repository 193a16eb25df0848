"""Structured log lines: an event and `key=value` fields, as text or one JSON object a line.

    log_event(log, "channel paused", channel="telegram", reason="rate_limited", until=until)

→ `2026-12-03T14:02:00Z INFO broadcaster.delivery.dispatch channel paused channel=telegram reason=rate_limited
until=2026-12-03T14:02:30Z`. Fields are ours (channel names, counts, fixed reason words, times),
never a customer's text, address or a secret: callers pass only such values.
"""

from __future__ import annotations

import json
import logging
import logging.config
from datetime import UTC, datetime
from typing import Any, Literal

from channels.log_redaction import hide_in_logs
from channels.registry import SPECS

__all__ = [
    "LogFormat",
    "StructuredFormatter",
    "configure_logging",
    "install_log_redaction",
    "log_event",
    "logging_config",
]

LogFormat = Literal["text", "json"]
_FIELDS = "fields"


def log_event(logger: logging.Logger, event: str, level: int = logging.INFO, **fields: object) -> None:
    logger.log(level, event, extra={_FIELDS: fields})


def _value(value: object) -> object:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    if isinstance(value, float):
        return round(value, 3)
    return value


def _text(value: object) -> str:
    text = str(_value(value))
    return json.dumps(text) if not text or any(c.isspace() or c in '"=' for c in text) else text


class StructuredFormatter(logging.Formatter):
    """`text`: time, level, logger, event, then `key=value` fields; `json`: all of them as one object."""

    def __init__(self, log_format: LogFormat = "text") -> None:
        super().__init__()
        self.log_format = log_format

    def format(self, record: logging.LogRecord) -> str:
        at = _value(datetime.fromtimestamp(record.created, UTC))
        fields: dict[str, object] = getattr(record, _FIELDS, None) or {}
        event = record.getMessage()
        if self.log_format == "json":
            line: dict[str, object] = {"at": at, "level": record.levelname, "logger": record.name}
            line["event"] = event
            line.update({key: _value(value) for key, value in fields.items()})
            if record.exc_info:
                line["exception"] = self.formatException(record.exc_info)
            return json.dumps(line, default=str)
        parts = [f"{at} {record.levelname} {record.name} {event}"]
        parts.extend(f"{key}={_text(value)}" for key, value in fields.items())
        text = " ".join(parts)
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


def logging_config(log_format: LogFormat) -> dict[str, Any]:
    """Sections of a `dictConfig`: our loggers (`broadcaster`, `channels`) at INFO, to stderr."""
    return {
        "formatters": {"structured": {"()": StructuredFormatter, "log_format": log_format}},
        "handlers": {
            "structured": {
                "class": "logging.StreamHandler",
                "formatter": "structured",
                "stream": "ext://sys.stderr",
            }
        },
        "loggers": {
            name: {"handlers": ["structured"], "level": "INFO", "propagate": False}
            for name in ("broadcaster", "channels")
        },
    }


def configure_logging(log_format: LogFormat) -> None:
    """Send our loggers' lines to stderr (a process without uvicorn's logging: `broadcaster worker`)."""
    logging.config.dictConfig({"version": 1, "disable_existing_loggers": False, **logging_config(log_format)})


def install_log_redaction() -> None:
    """Hide the secrets every channel's client libraries write into their own logs (`LogRule`s of
    the channel specs): once, at start-up, before any client logs a line."""
    for spec in SPECS.values():
        for rule in spec.log_rules:
            hide_in_logs(rule.loggers, rule.secret, rule.rewrite)
