"""Pure parsing of inbound e-mail: reply addresses and the new text only.

Nothing here does I/O, so every rule is tested on recorded `.eml` files without a network.
A reply reaches us at `reply+<update_id>.<token>@<reply_domain>` (see `channels.email.message`);
the token is the subscription's reply token, hence the conversation key.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from email.utils import parseaddr, parsedate_to_datetime
from typing import NamedTuple, cast

from channels.base import InboundMessage
from channels.email.automated import looks_automatic
from channels.email.headers import header_text
from channels.email.html import html_to_text
from channels.email.quotes import strip_quotes

__all__ = [
    "CHANNEL",
    "PARSE_SECONDS",
    "ReplyAddress",
    "html_to_text",
    "parse_headers",
    "parse_message",
    "parse_reply",
    "parse_reply_address",
    "referenced_ids",
    "replies_from",
]

CHANNEL = "email"
# Parsing runs off the event loop and is given this long: more means the machine is overloaded.
PARSE_SECONDS = 10.0

_REPLY_LOCAL = re.compile(r"reply\+(\d{1,18})\.([0-9a-f]{8,32})", re.IGNORECASE)
_MESSAGE_ID = re.compile(r"<[^<>\s]+>")


class ReplyAddress(NamedTuple):
    """The parts of one of our reply addresses."""

    update_id: int
    token: str


def parse_reply_address(address: str, reply_domain: str) -> ReplyAddress | None:
    """`reply+42.0123456789abcdef@reply.shop.example` → `ReplyAddress(42, "0123456789abcdef")`.

    None for anything else (another domain, another local part): the listener is no relay.
    """
    local, at, domain = address.strip().strip("<>").rpartition("@")
    if not at or domain.lower().rstrip(".") != reply_domain.lower().rstrip("."):
        return None
    match = _REPLY_LOCAL.fullmatch(local)
    if match is None:
        return None
    return ReplyAddress(int(match.group(1)), match.group(2).lower())  # tokens are issued lower-case


# -- one reply -----------------------------------------------------------------------------------


def parse_message(raw: bytes) -> EmailMessage:
    """Parse wire bytes with the modern policy (header objects, `get_body`)."""
    return message_from_bytes(raw, policy=policy.default)


def parse_headers(raw: bytes) -> EmailMessage:
    """Only the header block of `raw`: enough to route and classify, the body left unread."""
    return BytesHeaderParser(policy=policy.default).parsebytes(raw)


def parse_reply(
    raw: bytes, recipients: Sequence[str], reply_domain: str, *, mail_from: str
) -> list[InboundMessage]:
    """One `InboundMessage` per conversation a reply was addressed to (new text only).

    Recipients that are not our reply addresses are ignored; two reply addresses with the
    same token (two updates, one subscriber) are one conversation, so one message. When
    several tokens are addressed, `external_id` gets `#<token>` so the inbox keeps each.
    `mail_from` is the envelope sender, kept in `raw` for the audit trail.
    """
    return replies_from(parse_message(raw), raw, recipients, reply_domain, mail_from=mail_from)


def replies_from(
    message: EmailMessage, raw: bytes, recipients: Sequence[str], reply_domain: str, *, mail_from: str
) -> list[InboundMessage]:
    """`parse_reply` for a message already parsed from `raw` (the listener parses once)."""
    tokens: dict[str, ReplyAddress] = {}
    for recipient in recipients:
        parsed = parse_reply_address(recipient, reply_domain)
        if parsed is not None:
            tokens.setdefault(parsed.token, parsed)
    if not tokens:
        return []
    message_id = _first_id(header_text(message, "Message-ID")) or "sha256:" + hashlib.sha256(raw).hexdigest()
    reply_to = _first_id(header_text(message, "In-Reply-To")) or _last_id(header_text(message, "References"))
    name, address = parseaddr(header_text(message, "From"))
    text, language = _new_text(message)
    base_raw: dict[str, object] = {
        "subject": header_text(message, "Subject"),
        "from": address.lower(),
        "mail_from": mail_from,
        "message-id": message_id,
        "in-reply-to": header_text(message, "In-Reply-To"),
        "references": header_text(message, "References"),
        "attachments": _attachment_names(message),
        "automated": looks_automatic(message, text),  # filed, shown as such, never acts
    }
    results = []
    for token, parsed in tokens.items():
        results.append(
            InboundMessage(
                channel=CHANNEL,
                external_id=message_id if len(tokens) == 1 else f"{message_id}#{token}",
                conversation_key=token,
                customer_handle=address.lower(),
                customer_name=name,
                text=text,
                received_at=_received_at(message),
                language=language or header_text(message, "Content-Language").split(",")[0].strip(),
                reply_to=reply_to,
                raw={**base_raw, "update_id": parsed.update_id, "token": token},
            )
        )
    return results


def referenced_ids(message: EmailMessage) -> list[str]:
    """The Message-IDs a message answers: In-Reply-To first, then References, newest first."""
    ids = _MESSAGE_ID.findall(header_text(message, "In-Reply-To"))
    ids += reversed(_MESSAGE_ID.findall(header_text(message, "References")))
    return list(dict.fromkeys(ids))[:20]


def _first_id(value: str) -> str:
    ids = _MESSAGE_ID.findall(value)
    return ids[0] if ids else ""


def _last_id(value: str) -> str:
    ids = _MESSAGE_ID.findall(value)
    return ids[-1] if ids else ""


def _received_at(message: EmailMessage) -> datetime:
    try:
        when = parsedate_to_datetime(header_text(message, "Date"))
        # "-0000" means "time zone unknown" (RFC 5322 §3.3) and parses naive: read it as UTC.
        return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    except (ValueError, TypeError, IndexError, OverflowError):  # OverflowError: year 9999 west of UTC
        return datetime.now(UTC)


def _attachment_names(message: EmailMessage) -> list[str]:
    return [part.get_filename() or part.get_content_type() for part in message.iter_attachments()]


def _new_text(message: EmailMessage) -> tuple[str, str]:
    """The reply's own words from its text part (else its HTML part), and that part's language."""
    part = message.get_body(preferencelist=("plain",))
    html = False
    if part is None:
        part = message.get_body(preferencelist=("html",))
        html = part is not None
    if part is None:
        return "", ""
    content = _decoded(cast(EmailMessage, part))
    text = html_to_text(content) if html else content
    language = header_text(cast(EmailMessage, part), "Content-Language").split(",")[0].strip()
    return strip_quotes(text), language


def _decoded(part: EmailMessage) -> str:
    try:
        return str(part.get_content())
    except (LookupError, UnicodeError):  # an unknown or lying charset: keep what is readable
        payload = part.get_payload(decode=True)
        return payload.decode("utf-8", errors="replace") if isinstance(payload, bytes) else ""
