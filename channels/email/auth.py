"""Whether a reply's From is authentic, as the MTA in front of us found (RFC 8601).

We do not check DKIM or DMARC ourselves: the MTA that receives the reply domain's mail does
(OpenDMARC, rspamd, a provider's gateway), writes `Authentication-Results: <its authserv-id>; …`
on top and removes any header claiming its id that it did not write (RFC 8601 §5). Only the
topmost header with that id is read, so one a sender added further down is ignored.

    Authentication-Results: mx.shop.example; dkim=pass header.d=example.com; dmarc=pass
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from email.message import EmailMessage
from email.utils import parseaddr

from channels.base import InboundMessage

__all__ = ["from_authenticated", "with_sender_check"]

_RESULT = re.compile(r"(?<![\w.-])(dmarc|dkim)\s*=\s*(\w+)((?:\s+[\w.-]+\s*=\s*[^\s;]+)*)", re.IGNORECASE)
_PROPERTY = re.compile(r"([\w.-]+)\s*=\s*([^\s;]+)")
_COMMENT = re.compile(r"\([^()]*\)")


def from_authenticated(message: EmailMessage, authserv_id: str) -> bool:
    """Whether `authserv_id`'s topmost Authentication-Results says the From domain passed DMARC
    (or DKIM signed by that very domain).

    >>> from_authenticated(parse_message(b"Authentication-Results: mx.shop.example; dmarc=pass "
    ...     b"header.from=example.com\\nFrom: c@example.com\\n\\nstop"), "mx.shop.example")
    True
    """
    domain = parseaddr(str(message.get("From", "")))[1].rpartition("@")[2].lower().rstrip(".")
    if not domain:
        return False
    for value in _values(message, "Authentication-Results"):
        server, _, results = _COMMENT.sub(" ", value).partition(";")
        if server.split()[:1] != [authserv_id.strip().lower()]:
            continue
        for method, result, properties in _RESULT.findall(results):
            found = {k.lower(): v.lower().rstrip(".") for k, v in _PROPERTY.findall(properties)}
            checked = found.get("header.from" if method.lower() == "dmarc" else "header.d", domain)
            if result.lower() == "pass" and checked == domain:
                return True
        return False  # only our MTA's topmost header counts
    return False


def with_sender_check(
    replies: Sequence[InboundMessage], message: EmailMessage, authserv_id: str
) -> list[InboundMessage]:
    """`replies` with `raw["authenticated"]` set when an `authserv_id` is configured (else as they are)."""
    if not authserv_id.strip():
        return list(replies)
    authentic = from_authenticated(message, authserv_id)
    return [dataclasses.replace(r, raw={**r.raw, "authenticated": authentic}) for r in replies]


def _values(message: EmailMessage, name: str) -> list[str]:
    # Malformed headers must not lose a reply: fall back to the raw values as text.
    try:
        values = message.get_all(name) or []
    except (ValueError, IndexError, TypeError):
        values = [value for key, value in message.raw_items() if key.lower() == name.lower()]
    return [" ".join(str(value).split()).lower() for value in values]
