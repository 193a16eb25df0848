"""X's credentials, hidden from the logs of tweepy and oauthlib."""

from __future__ import annotations

import re

from channels.log_redaction import LogRule

__all__ = ["LOG_RULES", "hide_oauth"]

# tweepy logs every request's headers at DEBUG and oauthlib the parameters it signs: both carry the
# consumer key and access token, in a header, a tuple list, a query string or a percent-encoded form.
_AUTH_HEADER = re.compile(r"""(['"]Authorization['"]\s*:\s*)(['"])(?:(?!\2).)*\2""", re.IGNORECASE)
_OAUTH_PARAM = re.compile(
    r"""(oauth_(?:consumer_key|token|signature|nonce)(?:', '|=|%3D|%253D|="))[^'&%"\s,)]*"""
)
_BEARER = re.compile(r"(Bearer\s+)\S+")
_LOGGERS = ("tweepy.asynchronous.client", "tweepy.client", "oauthlib.oauth1.rfc5849")


def hide_oauth(message: str) -> str:
    """OAuth keys, signatures and bearer tokens hidden, as tweepy and oauthlib log them at DEBUG."""
    lowered = message.lower()
    if "oauth" not in lowered and "bearer" not in lowered and "authorization" not in lowered:
        return message
    message = _AUTH_HEADER.sub(r"\1\2***\2", message)
    message = _OAUTH_PARAM.sub(r"\1***", message)
    return _BEARER.sub(r"\1***", message)


LOG_RULES = (LogRule(_LOGGERS, "X credentials", hide_oauth),)
