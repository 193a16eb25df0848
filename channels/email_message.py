"""Build the MIME message of one broadcast e-mail (pure: no I/O).

The Message-ID is derived from the delivery's idempotency key, so a message resent after a
crash carries the same id and mail clients (and we) can tell it is a duplicate.
"""

from __future__ import annotations

import binascii
import functools
import hashlib
from datetime import UTC, datetime
from email import policy
from email.header import Header
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime

from broadcaster.message import RenderedMessage
from channels.base import Target

#: RFC 8058 one-click unsubscribe: the exact value mailbox providers look for.
ONE_CLICK_UNSUBSCRIBE = "List-Unsubscribe=One-Click"


def message_id_for(idempotency_key: str, from_address: str) -> str:
    """Deterministic Message-ID: `<sha256(key)[:32]@domain-of-sender>`.

    >>> message_id_for("7:email:a@b.example", "status@shop.example").endswith("@shop.example>")
    True
    """
    digest = hashlib.sha256(idempotency_key.encode("utf-8")).hexdigest()[:32]
    domain = from_address.rpartition("@")[2] or "localhost"
    return f"<{digest}@{domain}>"


def is_plausible_address(address: str) -> bool:
    """A cheap sanity check before talking to the server: one `@`, no spaces or line breaks."""
    local, at, domain = address.partition("@")
    return bool(at and local and domain) and "@" not in domain and not any(c.isspace() for c in address)


def build_email(
    message: RenderedMessage,
    target: Target,
    *,
    idempotency_key: str,
    from_address: str,
    from_name: str = "",
    reply_domain: str = "",
    now: datetime | None = None,
) -> EmailMessage:
    """Return a `multipart/alternative` (text then HTML, UTF-8) message for one recipient.

    Headers: From, To, Subject, Date, Message-ID, Content-Language, and when the target has
    them List-Unsubscribe + List-Unsubscribe-Post (RFC 8058) and `Reply-To: reply+<token>@…`.
    Never `Auto-Submitted`: a broadcast is not an auto-reply and must not be filtered as one.
    """
    email = EmailMessage(policy=policy.SMTP)
    email["From"] = Address(display_name=from_name, addr_spec=from_address) if from_name else from_address
    email["To"] = target.address
    # A subject is one line (RFC 5322 §2.2.3 folding is the generator's job, not ours).
    email["Subject"] = " ".join(message.title.split())
    email["Date"] = format_datetime(now or datetime.now(UTC))
    email["Message-ID"] = message_id_for(idempotency_key, from_address)
    if target.unsubscribe_url:
        email["List-Unsubscribe"] = f"<{target.unsubscribe_url}>"
        email["List-Unsubscribe-Post"] = ONE_CLICK_UNSUBSCRIBE
    if target.reply_token and reply_domain:
        email["Reply-To"] = f"reply+{target.reply_token}@{reply_domain}"
    # Quoted-printable keeps accented French readable in source and survives 7-bit relays.
    email.set_content(message.text, subtype="plain", charset="utf-8", cte="quoted-printable")
    if message.html:
        email.add_alternative(message.html, subtype="html", charset="utf-8", cte="quoted-printable")
    # After the body: set_content() drops every Content-* header already set.
    # Content-Language takes a BCP 47 tag: fr_CA becomes fr-CA.
    email["Content-Language"] = target.locale.replace("_", "-")
    return email


def build_email_bytes(
    message: RenderedMessage,
    target: Target,
    *,
    idempotency_key: str,
    from_address: str,
    from_name: str = "",
    reply_domain: str = "",
    now: datetime | None = None,
) -> bytes:
    """The same message as `build_email`, as wire bytes, ~80x cheaper (the broadcast hot path).

    `email.policy` objects cost ~4.6 ms a message (every header parsed, a class built per header
    lookup): that alone caps a core at ~200 e-mails/s. Here headers are plain ASCII text or
    RFC 2047 words (cached: one subject per rendition) and bodies go through C `binascii.b2a_qp`.
    Non-ASCII addresses (SMTPUTF8) take `build_email`, which knows those rules.
    """
    if not (target.address.isascii() and from_address.isascii()):
        return build_email(
            message,
            target,
            idempotency_key=idempotency_key,
            from_address=from_address,
            from_name=from_name,
            reply_domain=reply_domain,
            now=now,
        ).as_bytes()
    message_id = message_id_for(idempotency_key, from_address)
    boundary = "=_" + hashlib.sha256(message_id.encode()).hexdigest()[:28]  # "=_" never occurs in QP
    headers = [
        f"From: {_from_header(from_name, from_address)}",
        f"To: {target.address}",
        f"Subject: {_unstructured(' '.join(message.title.split()))}",
        f"Date: {format_datetime(now or datetime.now(UTC))}",
        f"Message-ID: {message_id}",
    ]
    if target.unsubscribe_url:
        headers.append(f"List-Unsubscribe: <{target.unsubscribe_url}>")
        headers.append(f"List-Unsubscribe-Post: {ONE_CLICK_UNSUBSCRIBE}")
    if target.reply_token and reply_domain:
        headers.append(f"Reply-To: reply+{target.reply_token}@{reply_domain}")
    headers.append("MIME-Version: 1.0")
    if not message.html:  # text only: a single part, as build_email makes it
        headers.append(_PART_HEADERS.format("plain").rstrip("\r\n"))
        headers.append(f"Content-Language: {target.locale.replace('_', '-')}")
        return "\r\n".join(headers).encode("ascii") + b"\r\n\r\n" + _quoted_printable(message.text)
    headers.append(f'Content-Type: multipart/alternative;\r\n boundary="{boundary}"')
    headers.append(f"Content-Language: {target.locale.replace('_', '-')}")
    chunks = ["\r\n".join(headers).encode("ascii"), b"\r\n\r\n"]
    for subtype, text in (("plain", message.text), ("html", message.html)):
        chunks.append(f"--{boundary}\r\n{_PART_HEADERS.format(subtype)}".encode("ascii"))
        chunks += [_quoted_printable(text), b"\r\n"]
    chunks.append(f"--{boundary}--\r\n".encode("ascii"))
    return b"".join(chunks)


_PART_HEADERS = (
    'Content-Type: text/{}; charset="utf-8"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n'
)


def _quoted_printable(text: str) -> bytes:
    text = text.replace("\r\n", "\n")
    text = text if text.endswith("\n") else text + "\n"  # as email.contentmanager does
    return binascii.b2a_qp(text.encode("utf-8"), istext=True).replace(b"\n", b"\r\n")


@functools.lru_cache(maxsize=256)
def _unstructured(value: str) -> str:
    """A Subject-like value: as is when ASCII, else RFC 2047 encoded words (folded)."""
    return value if value.isascii() else Header(value, "utf-8", maxlinelen=76).encode(linesep="\r\n")


@functools.lru_cache(maxsize=64)
def _from_header(from_name: str, from_address: str) -> str:
    if not from_name:
        return from_address
    if from_name.isascii():
        return str(Address(display_name=from_name, addr_spec=from_address))
    return f"{_unstructured(from_name)} <{from_address}>"
