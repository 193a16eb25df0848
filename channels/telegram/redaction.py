"""The bot token, hidden wherever it could be written: in URLs that httpx (INFO) and PTB's Bot
(DEBUG) log, and in the errors we keep."""

from __future__ import annotations

import re

from channels.log_redaction import LogRule

__all__ = ["LOG_RULES", "hide_bot_token"]

_TOKEN_IN_URL = re.compile(r"/bot[^/\s\"'`]+")


def hide_bot_token(message: str) -> str:
    """Bot API URLs carry the token: `/bot123:ABC/sendMessage` becomes `/bot***/sendMessage`."""
    return _TOKEN_IN_URL.sub("/bot***", message) if "/bot" in message else message


LOG_RULES = (LogRule(("httpx", "telegram.Bot"), "bot token", hide_bot_token),)
