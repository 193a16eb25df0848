"""The IMAP password, hidden: aioimaplib logs each command at DEBUG and masks the password only
when it needed no quoting."""

from __future__ import annotations

import re

from channels.log_redaction import LogRule

__all__ = ["LOG_RULES", "hide_login"]

_LOGIN_ARGUMENTS = re.compile(r"\bLOGIN .*")


def hide_login(message: str) -> str:
    return _LOGIN_ARGUMENTS.sub("LOGIN ***", message) if "LOGIN " in message else message


LOG_RULES = (LogRule(("aioimaplib.aioimaplib",), "IMAP login", hide_login),)
