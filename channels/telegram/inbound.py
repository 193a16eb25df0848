"""Telegram updates (pure): webhook bodies and getUpdates results become `InboundMessage`s.

Read from the JSON itself, never through PTB's `Update` model: PTB 22 refuses shapes Telegram
still delivers (a `from` without `is_bot`, pre-2019 photos, documents and stickers), and one such
update would make the whole getUpdates batch unreadable. One update never blocks another: an
unreadable one is logged and, when it carries text, filed as a conversation of its own
("update:<update_id>") for an agent to read.
https://core.telegram.org/bots/api#update
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from channels.base import InboundMessage
from channels.unreadable import read_each, salvaged

__all__ = ["INBOUND_KINDS", "MEDIA_LABELS", "messages_of", "parse_updates", "update_id_of"]

INBOUND_KINDS = ("message", "edited_message")
_INBOUND_CHATS = frozenset({"private", "group", "supergroup"})
# What a message without text or caption holds, in the order Telegram's fields overlap: an
# animation also comes as a `document`, a venue with its `location`.
MEDIA_LABELS = (
    ("photo", "[photo]"),
    ("animation", "[GIF]"),
    ("video", "[video]"),
    ("video_note", "[video message]"),
    ("voice", "[voice message]"),
    ("audio", "[audio]"),
    ("document", "[document]"),
    ("sticker", "[sticker]"),
    ("venue", "[venue]"),
    ("location", "[location]"),
    ("contact", "[contact]"),
    ("poll", "[poll]"),
)


def parse_updates(body: bytes) -> list[InboundMessage]:
    """Inbox messages of a webhook body: one `Update`, or a list of them (`messages_of`).

    Only a body that is not JSON, or neither an object nor a list, raises `ValueError`.
    """
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"Telegram update is not valid JSON: {exc}") from None
    if not isinstance(data, dict | list):
        raise ValueError("Telegram update must be a JSON object")
    return messages_of(data if isinstance(data, list) else [data])


def messages_of(updates: Iterable[object]) -> list[InboundMessage]:
    """The customer messages in `updates`: other update kinds, bots and channel posts give none.

    Text messages and edits from private chats and groups; a caption stands for its media, and
    media alone for its label (`MEDIA_LABELS`). Never raises: what cannot be read is logged.
    """
    return read_each(updates, _message_of, describe=_describe, salvage=_unreadable)


def update_id_of(update: object) -> int | None:
    """The update's `update_id`, None when it has none (or not an integer)."""
    value = update.get("update_id") if isinstance(update, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _describe(update: object) -> str:
    return f"Telegram update {update_id_of(update) or 'without update_id'}"


def _message_of(update: object) -> InboundMessage | None:
    if not isinstance(update, dict):
        raise ValueError("not a JSON object")
    kind = _kind_of(update)
    return None if kind is None else _read(update[kind], kind, update)


def _kind_of(update: Mapping[str, Any]) -> str | None:
    return next((kind for kind in INBOUND_KINDS if kind in update), None)


def _read(message: object, kind: str, update: Mapping[str, Any]) -> InboundMessage | None:
    if not isinstance(message, dict):
        raise ValueError(f"{kind} is not an object")
    chat = _field(message, f"{kind}.chat", dict)
    chat_id = _field(chat, f"{kind}.chat.id", int)
    message_id = _field(message, f"{kind}.message_id", int)
    received_at = _time(message.get("date"), f"{kind}.date")
    sender = message.get("from")
    if sender is not None and not isinstance(sender, dict):
        raise ValueError(f"{kind}.from is not an object")
    sender = sender or {}
    text = _text_of(message)
    if chat.get("type") not in _INBOUND_CHATS or text is None or sender.get("is_bot") is True:
        return None
    replied = message.get("reply_to_message")
    reply_to = ""
    if isinstance(replied, dict) and isinstance(replied.get("message_id"), int):
        reply_to = str(replied["message_id"])
    return InboundMessage(
        channel="telegram",
        external_id=f"{chat_id}:{message_id}",
        conversation_key=str(chat_id),
        customer_handle=_handle(sender, str(chat_id)),
        text=text,
        received_at=received_at,
        customer_name=" ".join(str(sender.get(k, "")).strip() for k in ("first_name", "last_name")).strip(),
        language=str(sender.get("language_code") or ""),
        reply_to=reply_to,
        raw=update,
    )


def _unreadable(update: object) -> InboundMessage | None:
    """An update we cannot file normally, kept raw when a customer wrote something in it."""
    if not isinstance(update, dict) or (update_id := update_id_of(update)) is None:
        return None
    kind = _kind_of(update)
    message = update[kind] if kind is not None else None
    if not isinstance(message, dict):
        return None
    text = _text_of(message, labels=False)
    if text is None:
        return None
    sender = message.get("from")
    try:
        received_at = _time(message.get("date"), "date")
    except ValueError:
        received_at = datetime.now(UTC)
    return salvaged(
        "telegram",
        f"update:{update_id}",  # no chat to answer in, or no message id to dedupe on
        text,
        received_at,
        update,
        customer_handle=_handle(sender if isinstance(sender, dict) else {}, ""),
    )


def _text_of(message: Mapping[str, Any], *, labels: bool = True) -> str | None:
    for key in ("text", "caption"):
        value = message.get(key)
        if isinstance(value, str) and value.strip():
            return value
    if labels:
        return next((label for key, label in MEDIA_LABELS if message.get(key)), None)
    return None


def _handle(sender: Mapping[str, Any], fallback: str) -> str:
    for key in ("username", "id"):
        value = sender.get(key)
        if isinstance(value, str | int) and not isinstance(value, bool) and str(value).strip():
            return str(value).strip()
    return fallback


def _time(value: object, path: str) -> datetime:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{path} is missing or not an integer")
    try:
        return datetime.fromtimestamp(value, tz=UTC)
    except (OverflowError, OSError, ValueError):
        raise ValueError(f"{path} {value} is out of range") from None


def _field(data: Mapping[str, Any], path: str, kind: type) -> Any:
    value = data.get(path.rsplit(".", 1)[-1])
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ValueError(f"{path} is missing or not {_KIND_NAMES[kind]}")
    return value


_KIND_NAMES = {dict: "an object", int: "an integer", str: "a string"}
