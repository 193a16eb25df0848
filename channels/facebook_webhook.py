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
from datetime import UTC, datetime
from typing import Any

from channels.base import InboundMessage

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
    edits, deletions, reactions, postbacks and attachments without text. Malformed input raises
    `ValueError` naming the field. Other objects (`instagram`, `user`…) give `[]`.
    """
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"Facebook webhook is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError("Facebook webhook: the body must be a JSON object")
    kind = _field(data, "object", str)
    if kind != "page":
        return []
    found: list[InboundMessage] = []
    for index, entry in enumerate(_field(data, "entry", list)):
        where = f"entry[{index}]"
        if not isinstance(entry, dict):
            raise ValueError(f"Facebook webhook: {where} is not an object")
        own_ids = {str(_field(entry, f"{where}.id", (str, int))), page_id} - {""}
        for number, change in enumerate(_optional_list(entry, f"{where}.changes")):
            comment = _comment(change, f"{where}.changes[{number}]", own_ids)
            if comment is not None:
                found.append(comment)
        for number, event in enumerate(_optional_list(entry, f"{where}.messaging")):
            message = _messenger(event, f"{where}.messaging[{number}]", own_ids)
            if message is not None:
                found.append(message)
    return found


def _comment(change: object, where: str, own_ids: set[str]) -> InboundMessage | None:
    if not isinstance(change, dict):
        raise ValueError(f"Facebook webhook: {where} is not an object")
    if change.get("field") != "feed":
        return None
    value = _field(change, f"{where}.value", dict)
    if value.get("item") != "comment" or value.get("verb") != "add":
        return None
    sender = _field(value, f"{where}.value.from", dict)
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


def _messenger(event: object, where: str, own_ids: set[str]) -> InboundMessage | None:
    if not isinstance(event, dict):
        raise ValueError(f"Facebook webhook: {where} is not an object")
    message = event.get("message")
    if message is None:
        return None  # delivery / read receipts, postbacks, reactions
    if not isinstance(message, dict):
        raise ValueError(f"Facebook webhook: {where}.message is not an object")
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
        raise ValueError(f"Facebook webhook: {path} is missing or not {_kind_name(kind)}")
    return value


def _optional_list(data: Mapping[str, Any], path: str) -> list[Any]:
    value = data.get(path.rsplit(".", 1)[-1], [])
    if not isinstance(value, list):
        raise ValueError(f"Facebook webhook: {path} is not a list")
    return value


def _kind_name(kind: type | tuple[type, ...]) -> str:
    names = {dict: "an object", list: "a list", int: "an integer", float: "a number", str: "a string"}
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def _time(value: int | float | str, *, millis: bool) -> datetime:
    """An aware UTC datetime from epoch (s or ms) or Graph's "2026-11-20T13:20:00+0000"."""
    if isinstance(value, str):
        try:
            return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S%z").astimezone(UTC)
        except (ValueError, OverflowError):  # OverflowError: year 9999 west of UTC
            raise ValueError(f"Facebook webhook: unreadable time {value[:40]!r}") from None
    try:
        return datetime.fromtimestamp(value / 1000 if millis else value, tz=UTC)
    except (OverflowError, OSError, ValueError):
        raise ValueError(f"Facebook webhook: time {value!r} is out of range") from None
