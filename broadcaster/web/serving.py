"""How uvicorn serves the app: the limits of `[server]`, and an access log that shows no token.

Query strings (`hub.verify_token`, filters) and the token of an unsubscribe link are replaced in
every access log line: `GET /unsubscribe/<redacted>/resubscribe?<redacted>`.

    uvicorn.Server(serving_config(create_app(settings), settings)).run()
"""

from __future__ import annotations

import copy
import logging
import re
from typing import Any
from urllib.parse import unquote

import uvicorn
from uvicorn.config import LOGGING_CONFIG

from broadcaster.config import Settings
from broadcaster.logs import LogFormat, logging_config

__all__ = ["REDACTED", "RedactTokens", "redact_target", "serving_config"]

REDACTED = "<redacted>"
_TOKEN_PATH = re.compile(r"(/unsubscribe/).+?(/resubscribe)?$")


def redact_target(target: str) -> str:
    """A request target as the access log may show it: no query string, no token in the path."""
    path, query_mark, _query = target.partition("?")
    path = _TOKEN_PATH.sub(rf"\g<1>{REDACTED}\g<2>", unquote(path))
    return path + (f"?{REDACTED}" if query_mark else "")


class RedactTokens(logging.Filter):
    """On `uvicorn.access`: rewrites the target of each record (its third argument)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], redact_target(args[2]), *args[3:])
        return True


def _log_config(log_format: LogFormat) -> dict[str, Any]:
    config = copy.deepcopy(LOGGING_CONFIG)
    for section, entries in logging_config(log_format).items():
        config[section].update(entries)
    config["filters"] = {"redact_tokens": {"()": RedactTokens}}
    config["loggers"]["uvicorn.access"]["filters"] = ["redact_tokens"]
    return config


def serving_config(
    app: Any, settings: Settings, host: str | None = None, port: int | None = None
) -> uvicorn.Config:
    """uvicorn's configuration for `app`: `[server]` address and limits, the redacting access log."""
    server = settings.server
    return uvicorn.Config(
        app,
        host=host or server.host,
        port=port or server.port,
        log_level="info",
        log_config=_log_config(server.log_format),
        limit_concurrency=server.limit_concurrency,
        timeout_keep_alive=server.keep_alive_seconds,
    )
