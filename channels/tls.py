"""TLS for the HTTP clients: the system CAs, plus the extra CA file a setting names (a private peer)."""

from __future__ import annotations

import ssl

from channels.base import Unauthorized

__all__ = ["client_context"]


def client_context(ca_file: str, setting: str) -> ssl.SSLContext:
    """A client context checking certificates and host names; `Unauthorized` naming `setting` if unusable.

    >>> client_context("", "channels.twitter.ca_file")  # system CAs only
    """
    context = ssl.create_default_context()
    if ca_file:
        try:
            context.load_verify_locations(cafile=ca_file)
        except (OSError, ssl.SSLError) as exc:
            reason = exc.strerror or type(exc).__name__
            raise Unauthorized(f"cannot use {setting} {ca_file!r}: {reason}") from None
    return context
