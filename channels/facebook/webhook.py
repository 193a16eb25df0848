"""Facebook page webhooks, pure: the subscription handshake, the signature, and the events.

The web route answers Meta's GET handshake with `verify_subscription`, checks every POST with
`signature_is_valid` on the raw body, and only then hands the body to `parse_events`. The
conversation key is the customer's id (commenter or Messenger sender): the inbox keeps one
conversation per customer per channel, whichever post they commented on.
https://developers.facebook.com/docs/graph-api/webhooks/getting-started
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from channels.base import InboundMessage
from channels.unreadable import read_each, salvaged

__all__ = ["parse_events", "signature_is_valid", "verify_subscription"]

_CHANNEL = "facebook"
_SIGNATURE = re.compile(r"sha256=([0-9a-fA-F]{64})")


def verify_subscription(query: Mapping[str, str], verify_token: str) -> str | None:
    """Return `hub.challenge` to echo back when Meta's handshake carries our verify token, else None.

    >>> verify_subscription({"hub.mode": "subscribe", "hub.verify_token": "t", "hub.challenge": "42"}, "t")
    '42'
    """
    challenge = query.get("hub.challenge")
    given = query.get("hub.verify_token")
    if not verify_token or query.get("hub.mode") != "subscribe" or given is None or challenge is None:
        return None
    # Bytes: compare_digest refuses non-ASCII str, and a query string may carry anything.
    if not hmac.compare_digest(given.encode("utf-8"), verify_token.encode("utf-8")):
        return None
    return challenge


def signature_is_valid(body: bytes, header: str | None, app_secret: str) -> bool:
    """Check `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body keyed by the app secret>`.

    Missing or malformed headers, and an empty secret, are invalid; the comparison is constant-time.
    """
    if not header or not app_secret:
        return False
    match = _SIGNATURE.fullmatch(header.strip())
    if match is None:
        return False
    expected = hmac.new(app_secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode("ascii"), match.group(1).lower().encode("ascii"))


def parse_events(body: bytes, *, page_id: str = "") -> list[InboundMessage]:
    """Turn one webhook delivery into inbox messages: new page comments and Messenger texts.

    Skips what the page itself wrote (echo prevention: the entry's page id, or `page_id`),
    edits, deletions, reactions, postbacks and attachments without text. A body that is not a
    JSON object with an `entry` list raises `ValueError`; one unreadable entry, change or event
    is logged naming the field, and the rest of the delivery is still read (`channels.unreadable`).
    Other objects (`instagram`, `user`…) give `[]`.
    """
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"Facebook webhook is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError("Facebook webhook: the body must be a JSON object")
    try:
        kind = _field(data, "object", str)
        entries = _field(data, "entry", list) if kind == "page" else []
    except ValueError as exc:
        raise ValueError(f"Facebook webhook: {exc}") from None
    items = [
        item for index, entry in enumerate(entries) for item in _items(entry, f"entry[{index}]", page_id)
    ]
    return read_each(items, _read, describe=lambda _: "Facebook webhook item", salvage=_salvaged)


@dataclass(frozen=True, slots=True)
class _Item:
    """One change (a comment) or Messenger event of an entry, with where it is and whose page it is."""

    kind: str  # "changes" or "messaging", the entry's list it comes from
    where: str  # "entry[0].changes[1]": what a log line names
    data: object  # the change or event; for an entry that cannot be read, why (a ValueError)
    own_ids: frozenset[str]


def _items(entry: object, where: str, page_id: str) -> list[_Item]:
    """The entry's changes and events; an entry we cannot read is one unreadable item."""
    try:
        if not isinstance(entry, dict):
            raise ValueError(f"{where} is not an object")
        own_ids = frozenset({str(_field(entry, f"{where}.id", (str, int))), page_id} - {""})
        return [
            _Item(kind, f"{where}.{kind}[{number}]", data, own_ids)
            for kind in ("changes", "messaging")
            for number, data in enumerate(_optional_list(entry, f"{where}.{kind}"))
        ]
    except ValueError as exc:
        return [_Item("entry", where, exc, frozenset())]


def _read(item: _Item) -> InboundMessage | None:
    if isinstance(item.data, ValueError):
        raise item.data
    if item.kind == "changes":
        return _comment(item.data, item.where, item.own_ids)
    return _messenger(item.data, item.where, item.own_ids)


def _salvaged(item: _Item) -> InboundMessage | None:
    """A comment or message we cannot read in full, kept when its id and its text can be."""
    data = item.data if isinstance(item.data, dict) else {}
    if item.kind == "changes":
        value = _object(data.get("value"))
        is_new = value.get("item") == "comment" and value.get("verb") == "add"
        found = ("comment:", value.get("comment_id") if is_new else None, value.get("message"))
        when, millis = value.get("created_time"), False
    else:
        message = _object(data.get("message"))
        found = ("mid:", None if message.get("is_echo") else message.get("mid"), message.get("text"))
        when, millis = data.get("timestamp"), True
    prefix, native_id, text = found
    if not isinstance(native_id, str) or not native_id or not isinstance(text, str) or not text.strip():
        return None
    try:
        received_at = _time(when, millis=millis)
    except ValueError:
        received_at = datetime.now(UTC)
    return salvaged(_CHANNEL, prefix + native_id, text, received_at, data)


def _object(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _comment(change: object, where: str, own_ids: frozenset[str]) -> InboundMessage | None:
    if not isinstance(change, dict):
        raise ValueError(f"{where} is not an object")
    if change.get("field") != "feed":
        return None
    value = _field(change, f"{where}.value", dict)
    if value.get("item") != "comment" or value.get("verb") != "add":
        return None
    sender = _sender(value, f"{where}.value")
    sender_id = str(_field(sender, f"{where}.value.from.id", (str, int)))
    if sender_id in own_ids:
        return None
    comment_id = _field(value, f"{where}.value.comment_id", str)
    post_id = _field(value, f"{where}.value.post_id", str)
    text = value.get("message")
    if not isinstance(text, str) or not text.strip():
        return None  # a sticker or photo comment: nothing to read or answer
    return InboundMessage(
        channel=_CHANNEL,
        external_id=f"comment:{comment_id}",
        conversation_key=sender_id,
        customer_handle=sender_id,
        customer_name=str(sender.get("name") or ""),
        text=text,
        received_at=_time(_field(value, f"{where}.value.created_time", (int, float, str)), millis=False),
        reply_to=str(value.get("parent_id") or post_id),
        raw=change,
    )


def _sender(value: Mapping[str, Any], where: str) -> dict[str, Any]:
    if "from" not in value and "sender_id" in value:  # feed changes in their older shape
        return {"id": value["sender_id"], "name": value.get("sender_name")}
    sender: dict[str, Any] = _field(value, f"{where}.from", dict)
    return sender


def _messenger(event: object, where: str, own_ids: frozenset[str]) -> InboundMessage | None:
    if not isinstance(event, dict):
        raise ValueError(f"{where} is not an object")
    message = event.get("message")
    if message is None:
        return None  # delivery / read receipts, postbacks, reactions
    if not isinstance(message, dict):
        raise ValueError(f"{where}.message is not an object")
    if message.get("is_echo"):
        return None  # what the page sent, echoed back
    text = message.get("text")
    if not isinstance(text, str) or not text.strip():
        return None
    sender = _field(event, f"{where}.sender", dict)
    sender_id = str(_field(sender, f"{where}.sender.id", (str, int)))
    if sender_id in own_ids:
        return None
    mid = _field(message, f"{where}.message.mid", str)
    replied = message.get("reply_to")
    reply_to = str(replied.get("mid") or "") if isinstance(replied, dict) else ""
    return InboundMessage(
        channel=_CHANNEL,
        external_id=f"mid:{mid}",
        conversation_key=sender_id,
        customer_handle=sender_id,
        text=text,
        # Messenger timestamps are epoch milliseconds.
        received_at=_time(_field(event, f"{where}.timestamp", (int, float)), millis=True),
        reply_to=reply_to,
        raw=event,
    )


def _field(data: Mapping[str, Any], path: str, kind: type | tuple[type, ...]) -> Any:
    value = data.get(path.rsplit(".", 1)[-1])
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ValueError(f"{path} is missing or not {_kind_name(kind)}")
    return value


def _optional_list(data: Mapping[str, Any], path: str) -> list[Any]:
    value = data.get(path.rsplit(".", 1)[-1], [])
    if not isinstance(value, list):
        raise ValueError(f"{path} is not a list")
    return value


def _kind_name(kind: type | tuple[type, ...]) -> str:
    names = {dict: "an object", list: "a list", int: "an integer", float: "a number", str: "a string"}
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def _time(value: object, *, millis: bool) -> datetime:
    """An aware UTC datetime from epoch (s or ms) or Graph's "2026-11-20T13:20:00+0000"."""
    if not isinstance(value, int | float | str) or isinstance(value, bool):
        raise ValueError(f"time {value!r:.40} is neither a number nor a date")
    if isinstance(value, str):
        try:
            return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S%z").astimezone(UTC)
        except (ValueError, OverflowError):  # OverflowError: year 9999 west of UTC
            raise ValueError(f"unreadable time {value[:40]!r}") from None
    try:
        return datetime.fromtimestamp(value / 1000 if millis else value, tz=UTC)
    except (OverflowError, OSError, ValueError):
        raise ValueError(f"time {value!r} is out of range") from None
