"""Secrets some client libraries write into their own logs (tokens in URLs, LOGIN arguments), hidden.

Each channel names its rules in its spec (`ChannelSpec.log_rules`); the process installs them all
once at start-up (`broadcaster.logs.install_log_redaction`), before any client logs a line:

    LogRule(("httpx", "telegram.Bot"), "bot token", hide_bot_token)

A rule is installed once per logger, however often it is installed again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

__all__ = ["LogRule", "hide_in_logs"]

Rewrite = Callable[[str], str]


@dataclass(frozen=True, slots=True)
class LogRule:
    """Pass every record of `loggers` through `rewrite`, which hides `secret` in its message."""

    loggers: tuple[str, ...]
    secret: str
    rewrite: Rewrite


class _Redact(logging.Filter):
    def __init__(self, secret: str, rewrite: Rewrite) -> None:
        super().__init__()
        self.secret = secret
        self._rewrite = rewrite

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a malformed record: let logging report it as usual
            return True
        hidden = self._rewrite(message)
        if hidden != message:
            record.msg, record.args = hidden, ()
        return True


def hide_in_logs(loggers: Iterable[str], secret: str, rewrite: Rewrite) -> None:
    """Pass every record of `loggers` through `rewrite`, which returns its message with `secret` hidden."""
    for name in loggers:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _Redact) and f.secret == secret for f in logger.filters):
            logger.addFilter(_Redact(secret, rewrite))
