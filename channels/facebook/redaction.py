"""The page access token, hidden: urllib3 logs request lines at DEBUG, and Graph GET requests
carry `access_token=` in the query (as do some of its errors)."""

from __future__ import annotations

import re

from channels.log_redaction import LogRule

__all__ = ["LOG_RULES", "hide_access_token"]

_TOKEN_PARAM = re.compile(r"(access_token=)[^&\s\"']+")


def hide_access_token(message: str) -> str:
    return _TOKEN_PARAM.sub(r"\1***", message) if "access_token=" in message else message


LOG_RULES = (LogRule(("urllib3.connectionpool",), "Graph access token", hide_access_token),)
