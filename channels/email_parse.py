"""Pure parsing of inbound e-mail: reply addresses and the new text only.

Nothing here does I/O, so every rule is tested on recorded `.eml` files without a network.
A reply reaches us at `reply+<update_id>.<token>@<reply_domain>` (see `channels.email_message`);
the token is the subscription's reply token, hence the conversation key.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import parseaddr, parsedate_to_datetime
from html.parser import HTMLParser
from typing import NamedTuple, cast

from channels.base import InboundMessage
from channels.email_automated import looks_automatic

CHANNEL = "email"

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
    return cast(EmailMessage, message_from_bytes(raw, policy=policy.default))


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
    message_id = _first_id(_header(message, "Message-ID")) or "sha256:" + hashlib.sha256(raw).hexdigest()
    reply_to = _first_id(_header(message, "In-Reply-To")) or _last_id(_header(message, "References"))
    name, address = parseaddr(_header(message, "From"))
    text, language = _new_text(message)
    base_raw: dict[str, object] = {
        "subject": _header(message, "Subject"),
        "from": address.lower(),
        "mail_from": mail_from,
        "message-id": message_id,
        "in-reply-to": _header(message, "In-Reply-To"),
        "references": _header(message, "References"),
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
                language=language or _header(message, "Content-Language").split(",")[0].strip(),
                reply_to=reply_to,
                raw={**base_raw, "update_id": parsed.update_id, "token": token},
            )
        )
    return results


def _header(message: EmailMessage, name: str) -> str:
    # Malformed headers must not lose a reply: fall back to the raw value as text.
    try:
        value = message.get(name)
    except (ValueError, IndexError, TypeError):
        value = next((v for k, v in message.raw_items() if k.lower() == name.lower()), None)
    return " ".join(str(value).split()) if value is not None else ""


def referenced_ids(message: EmailMessage) -> list[str]:
    """The Message-IDs a message answers: In-Reply-To first, then References, newest first."""
    ids = _MESSAGE_ID.findall(_header(message, "In-Reply-To"))
    ids += reversed(_MESSAGE_ID.findall(_header(message, "References")))
    return list(dict.fromkeys(ids))[:20]


def _first_id(value: str) -> str:
    ids = _MESSAGE_ID.findall(value)
    return ids[0] if ids else ""


def _last_id(value: str) -> str:
    ids = _MESSAGE_ID.findall(value)
    return ids[-1] if ids else ""


def _received_at(message: EmailMessage) -> datetime:
    try:
        when = parsedate_to_datetime(_header(message, "Date"))
    except (ValueError, TypeError, IndexError):
        return datetime.now(UTC)
    # "-0000" means "time zone unknown" (RFC 5322 §3.3) and parses naive: read it as UTC.
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


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
    language = _header(cast(EmailMessage, part), "Content-Language").split(",")[0].strip()
    return strip_quotes(text), language


def _decoded(part: EmailMessage) -> str:
    try:
        return str(part.get_content())
    except (LookupError, UnicodeError):  # an unknown or lying charset: keep what is readable
        payload = part.get_payload(decode=True)
        return payload.decode("utf-8", errors="replace") if isinstance(payload, bytes) else ""


# -- quoted history and signatures ---------------------------------------------------------------

_ATTRIBUTION = (
    re.compile(r"On\s.+\swrote\s*:", re.IGNORECASE | re.DOTALL),
    re.compile(r"Le\s.+\sa\s+écrit\s*:", re.IGNORECASE | re.DOTALL),
    re.compile(r"-{2,}\s*(Original Message|Message d'origine|Mail original|Message original)\s*-{2,}", re.I),
    re.compile(r"-{2,}\s*(Forwarded message|Message transféré)\s*-{2,}", re.IGNORECASE),
)
# Outlook's header block: "From: …" / "De : …" then "Sent:" / "Envoyé :" / "Date :".
_OUTLOOK_FROM = re.compile(r"\*?(From|De)\s*:\*?\s", re.IGNORECASE)
_OUTLOOK_NEXT = re.compile(r"\*?(Sent|Envoyé|Date)\s*:\*?\s", re.IGNORECASE)
_SEPARATOR = re.compile(r"[_\-=]{10,}")
_MOBILE_FOOTER = re.compile(
    r"(Sent from my |Envoyé de mon |Envoyé depuis mon |Get Outlook for |Obtenir Outlook pour ).{0,60}",
    re.IGNORECASE,
)


def strip_quotes(text: str) -> str:
    """Keep only the new text: no `>` lines, nothing after an attribution line or a signature.

    >>> strip_quotes("Toujours en panne ?\\n\\nLe 12 nov. 2026, Shop a écrit :\\n> Incident")
    'Toujours en panne ?'
    """
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    kept: list[str] = []
    for index, line in enumerate(lines):
        if line == "--" or _starts_history(lines, index):
            break  # "-- " is the signature delimiter (RFC 3676 §4.3); senders often strip its space
        if not line.lstrip().startswith(">"):
            kept.append(line)
    while kept and (not kept[-1].strip() or _SEPARATOR.fullmatch(kept[-1].strip())):
        kept.pop()
    if kept and _MOBILE_FOOTER.fullmatch(kept[-1].strip()):
        kept.pop()
    return "\n".join(_squeeze_blank(kept)).strip()


def _starts_history(lines: Sequence[str], index: int) -> bool:
    line = lines[index].strip()
    if not line:
        return False
    # Gmail and Apple Mail wrap a long attribution over two lines; accept it joined with the next.
    candidates = [line]
    if index + 1 < len(lines):
        candidates.append(f"{line} {lines[index + 1].strip()}")
    if any(p.fullmatch(c) for p in _ATTRIBUTION for c in candidates):
        return True
    if _OUTLOOK_FROM.match(line):
        following = [candidate.strip() for candidate in lines[index + 1 : index + 4] if candidate.strip()]
        return any(_OUTLOOK_NEXT.match(candidate) for candidate in following)
    return False


def _squeeze_blank(lines: Iterable[str]) -> list[str]:
    out: list[str] = []
    for line in lines:
        if line.strip() or (out and out[-1].strip()):
            out.append(line if line.strip() else "")
    return out


# -- HTML to text (stdlib only) ------------------------------------------------------------------

_BLOCK_TAGS = frozenset(
    {"div", "li", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "table", "ul", "ol", "hr", "pre", "dd", "dt"}
)
_PARAGRAPH_TAGS = frozenset({"p"})
_INVISIBLE_TAGS = frozenset({"script", "style", "head", "title", "template", "noscript"})
_VOID_TAGS = frozenset({"br", "hr", "img", "meta", "link", "input", "wbr", "col", "area", "base", "source"})
_WHITESPACE = re.compile(r"\s+")


class _TextExtractor(HTMLParser):
    """Visible text of an HTML body; quoted history (`<blockquote>`) and scripts are dropped.

    Nothing is interpreted beyond that: entities become characters (`&lt;` is a literal `<`).
    Line breaks come from tags only (`<br>`, blocks, paragraphs), as a browser shows them.
    """

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.chunks: list[str] = []
        self._hidden: list[str] = []  # open elements whose content is not the reply's text

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self._hidden or tag in _INVISIBLE_TAGS or tag == "blockquote":
            if tag not in _VOID_TAGS:
                self._hidden.append(tag)
        else:
            self._break(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if not self._hidden:
            self._break(tag)

    def handle_endtag(self, tag: str) -> None:
        if self._hidden:
            if tag in self._hidden:  # tolerate unclosed children: close down to the matching tag
                del self._hidden[len(self._hidden) - 1 - self._hidden[::-1].index(tag) :]
        elif tag != "br":  # a stray </br> is no line break
            self._break(tag)

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self.chunks.append(_WHITESPACE.sub(" ", data))  # source line breaks are spaces in HTML

    def _break(self, tag: str) -> None:
        if tag == "br":
            self.chunks.append("\n")
        elif tag in _BLOCK_TAGS:
            self._ensure_newlines(1)
        elif tag in _PARAGRAPH_TAGS:
            self._ensure_newlines(2)

    def _ensure_newlines(self, count: int) -> None:
        text = "".join(self.chunks[-3:]).rstrip(" ")
        if not text:
            return
        have = len(text) - len(text.rstrip("\n"))
        self.chunks.append("\n" * max(0, count - have))


def html_to_text(html: str) -> str:
    """Plain text of an HTML e-mail body, line breaks as displayed, whitespace collapsed.

    >>> html_to_text("<p>Le site&nbsp;est <b>lent</b></p><blockquote>vieux</blockquote>")
    'Le site est lent'
    """
    parser = _TextExtractor()
    parser.feed(html)
    parser.close()
    lines = (" ".join(line.split()) for line in "".join(parser.chunks).split("\n"))
    return "\n".join(_squeeze_blank(lines)).strip()
