"""Build the MIME message of one broadcast e-mail (pure: no I/O).

The Message-ID is derived from the delivery's idempotency key, so a message resent after a
crash carries the same id and mail clients (and we) can tell it is a duplicate.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from email import policy
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
