"""Mail for `postmaster@<reply_domain>` (RFC 5321 §4.5.1 requires the address): to the staff e-mail.

Each message becomes a staff alert (`staff_alerts`, through the outbox): who sent it, its
headers, its text and the machine-readable parts of a report (a DSN's `message/delivery-status`,
an ARF `message/feedback-report`), so bounces and abuse reports about the reply domain reach a
person. The listener only accepts postmaster when `staff.email` is set: with nobody to read it,
`550` tells the sender rather than losing the message.
"""

from __future__ import annotations

import asyncio
from email.message import EmailMessage

from broadcaster.config import Settings
from broadcaster.db import SessionFactory, writing
from broadcaster.delivery.staff_alerts import queue_staff_alert
from broadcaster.models import utcnow
from channels.email.headers import header_text
from channels.email.parse import html_to_text, parse_message

__all__ = ["MAX_TEXT", "forward_to_staff", "postmaster_alert"]

MAX_TEXT = 20_000  # characters of the forwarded text: a report's gist, not a 1 MiB attachment
_HEADERS = ("From", "To", "Date", "Subject", "Message-ID")
_REPORT_TYPES = ("message/delivery-status", "message/feedback-report", "text/rfc822-headers")


def postmaster_alert(raw: bytes, mail_from: str, reply_domain: str) -> tuple[str, str]:
    """The staff alert's subject and text for one message to postmaster."""
    message = parse_message(raw)
    subject = header_text(message, "Subject") or "(no subject)"
    lines = [f"Envelope sender: {mail_from or '<>'}"]
    lines += [f"{name}: {value}" for name in _HEADERS if (value := header_text(message, name))]
    lines += ["", _body(message)]
    for part in message.walk():
        if part.get_content_type() in _REPORT_TYPES:
            lines += ["", f"--- {part.get_content_type()} ---", _report_text(part)]
    text = "\n".join(lines)
    if len(text) > MAX_TEXT:
        text = text[:MAX_TEXT] + f"\n[… cut at {MAX_TEXT} characters of {len(text)}]"
    return f"Mail for postmaster@{reply_domain}: {subject}", text


async def forward_to_staff(sessions: SessionFactory, settings: Settings, raw: bytes, mail_from: str) -> int:
    """Queue the alert for every staff address; returns the outbox rows written."""
    # Off the loop that serves the web and the inbox: the message is anyone's, up to inbound_max_bytes.
    domain = settings.channels.email.reply_domain
    subject, text = await asyncio.to_thread(postmaster_alert, raw, mail_from, domain)
    async with sessions() as session, writing(session):
        written = await queue_staff_alert(await session.connection(), settings, subject, text, utcnow())
        await session.commit()
    return written


def _body(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain", "html"))
    if part is None:
        return "(no text part)"
    try:
        content = str(part.get_content())
    except (LookupError, UnicodeError):  # an unknown or lying charset: keep what is readable
        payload = part.get_payload(decode=True)
        content = payload.decode("utf-8", errors="replace") if isinstance(payload, bytes) else ""
    return html_to_text(content) if part.get_content_type() == "text/html" else content.strip()


def _report_text(part: EmailMessage) -> str:
    payload = part.get_payload()
    if isinstance(payload, list):  # message/delivery-status parses as a list of header blocks
        return "\n\n".join(str(block).strip() for block in payload)
    return str(payload).strip()
