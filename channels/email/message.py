"""Build the MIME message of one broadcast e-mail, or of one answer to a customer (pure: no I/O).

The Message-ID is derived from the delivery's idempotency key, so a message resent after a
crash carries the same id and mail clients (and we) can tell it is a duplicate.
"""

from __future__ import annotations

import binascii
import functools
import hashlib
import re
from datetime import UTC, datetime
from email import policy
from email.header import Header
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime

from broadcaster.message import RenderedMessage
from channels.base import Reply, Target

#: RFC 8058 one-click unsubscribe: the exact value mailbox providers look for.
ONE_CLICK_UNSUBSCRIBE = "List-Unsubscribe=One-Click"

# A msg-id as it may appear in a header: printable ASCII between angle brackets (RFC 5322 §3.6.4).
# The inbox's external ids may carry more ("<id>#token") or be no Message-ID at all ("sha256:…").
_MESSAGE_ID = re.compile(r"<[!-;=?-~]+>")
# Enough to thread in every client; the root and the latest are kept, as RFC 5322 §3.6.4 suggests.
_MAX_REFERENCES = 20
# "Re:", "RE :" (French Outlook), "Re[2]:", repeated: one "Re: " replaces them all.
_REPLY_PREFIX = re.compile(r"^(?:\s*re\s*(?:\[\d+\])?\s*:)+\s*", re.IGNORECASE)
_DEFAULT_SUBJECT = {"fr": "Votre message", "en": "Your message"}


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
    email = _addressed(
        from_address=from_address,
        from_name=from_name,
        to_address=target.address,
        subject=message.title,
        message_id=message_id_for(idempotency_key, from_address),
        now=now,
    )
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


def build_reply(
    message: RenderedMessage,
    to: Reply,
    *,
    idempotency_key: str,
    from_address: str,
    from_name: str = "",
    reply_domain: str = "",
    now: datetime | None = None,
) -> EmailMessage:
    """An answer to the customer `to.customer_handle`, in their thread: text/plain UTF-8.

    Subject "Re: <their subject>"; In-Reply-To and References name their message (RFC 5322
    §3.6.4) so mail clients thread it; `Reply-To: reply+<token>@…` brings their next reply back
    to the conversation. The inbox sends few of these: the slow, careful `policy.SMTP` path.
    """
    email = _addressed(
        from_address=from_address,
        from_name=from_name,
        to_address=to.customer_handle.strip(),
        subject=reply_subject(to.subject, to.locale),
        message_id=message_id_for(idempotency_key, from_address),
        now=now,
    )
    answered = _MESSAGE_ID.findall(to.in_reply_to)[:1]
    if answered:
        email["In-Reply-To"] = answered[0]
    references = thread_references(to.references, to.in_reply_to)
    if references:
        email["References"] = " ".join(references)
    if to.reply_token and reply_domain:
        email["Reply-To"] = f"reply+{to.reply_token}@{reply_domain}"
    email.set_content(message.text, subtype="plain", charset="utf-8", cte="quoted-printable")
    email["Content-Language"] = to.locale.replace("_", "-")  # after set_content, as in build_email
    if message.extra.get("auto_submitted"):  # the bot's answers (RFC 3834): out-of-office never loops
        email["Auto-Submitted"] = "auto-replied"
    return email


def reply_subject(subject: str, locale: str) -> str:
    """`Re: <subject>` once, however many "Re:" the customer's client stacked; a default if empty.

    >>> reply_subject("RE : Re: Commande 10482", "fr")
    'Re: Commande 10482'
    >>> reply_subject("", "en_GB")
    'Re: Your message'
    """
    bare = _REPLY_PREFIX.sub("", " ".join(subject.split()))
    language = locale.replace("-", "_").partition("_")[0].lower()
    return f"Re: {bare or _DEFAULT_SUBJECT.get(language, _DEFAULT_SUBJECT['fr'])}"


def thread_references(references: str, in_reply_to: str) -> list[str]:
    """The answer's References: the customer's References, then their message's own id.

    Only well-formed msg-ids are kept, each once; past 20, the root and the latest 19.

    >>> thread_references("<a@x> <b@x>", "<c@x>#0123abcd")
    ['<a@x>', '<b@x>', '<c@x>']
    """
    found = _MESSAGE_ID.findall(references) + _MESSAGE_ID.findall(in_reply_to)[:1]
    ids = list(dict.fromkeys(found))
    if len(ids) > _MAX_REFERENCES:
        ids = [ids[0], *ids[-(_MAX_REFERENCES - 1) :]]
    return ids


def _addressed(
    *, from_address: str, from_name: str, to_address: str, subject: str, message_id: str, now: datetime | None
) -> EmailMessage:
    """A new message with its envelope headers: From, To, Subject, Date, Message-ID."""
    email = EmailMessage(policy=policy.SMTP)
    email["From"] = Address(display_name=from_name, addr_spec=from_address) if from_name else from_address
    email["To"] = to_address
    # A subject is one line (RFC 5322 §2.2.3 folding is the generator's job, not ours).
    email["Subject"] = " ".join(subject.split())
    email["Date"] = format_datetime(now or datetime.now(UTC))
    email["Message-ID"] = message_id
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
