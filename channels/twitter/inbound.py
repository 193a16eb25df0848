"""X inbound payloads (pure): mention pages and DM event pages become `InboundMessage`s.

Shapes: developer.x.com API v2 "GET /2/users/:id/mentions" and "GET /2/dm_events". Ids are
snowflakes (numeric strings, increasing with time), so cursors compare as integers. The
conversation key is the customer's user id, for mentions and DMs alike: the inbox keeps one
conversation per customer per channel, and a DM answer needs that id as its recipient.
"""

from __future__ import annotations

import html
import logging
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from channels.base import InboundMessage
from channels.unreadable import read_each, salvaged

log = logging.getLogger(__name__)

__all__ = [
    "data_list",
    "id_number",
    "meta",
    "newest_id",
    "oldest_first",
    "parse_cursor",
    "parse_dm_events",
    "parse_mentions",
]

_TWITTER_EPOCH_MS = 1288834974657  # snowflake ids carry their creation time since this epoch
_ID = re.compile(r"[0-9]{1,19}")  # snowflakes are 64-bit integers
_Users = Mapping[str, Mapping[str, Any]]


def parse_mentions(payload: Mapping[str, Any], *, me_id: str = "") -> list[InboundMessage]:
    """Turn a GET /2/users/:id/mentions page into inbox messages (tweets by `me_id` skipped).

    A page that is not an object with a `data` list raises `ValueError`; one unreadable tweet is
    logged and skipped, or filed raw when it has an id and text (`channels.unreadable`).
    """
    users = _users(payload)
    return read_each(
        data_list(payload),
        lambda tweet: _mention(tweet, users, me_id),
        describe=lambda tweet: f"X mention {_id_of(tweet) or 'without id'}",
        salvage=lambda tweet: _salvaged(tweet, "tweet"),
    )


def parse_dm_events(payload: Mapping[str, Any], me_id: str) -> list[InboundMessage]:
    """Turn a GET /2/dm_events page into inbox messages: MessageCreate events not sent by `me_id`.

    A page that is not an object with a `data` list raises `ValueError`; one unreadable event is
    logged and skipped, or filed raw when it has an id and text (`channels.unreadable`).
    """
    users = _users(payload)
    return read_each(
        data_list(payload),
        lambda event: _dm(event, users, me_id),
        describe=lambda event: f"X DM event {_id_of(event) or 'without id'}",
        salvage=lambda event: _salvaged(event, "dm"),
    )


def _salvaged(item: dict[str, Any], prefix: str) -> InboundMessage | None:
    item_id, text = _id_of(item), item.get("text")
    if not item_id or not isinstance(text, str) or not text.strip():
        return None
    external_id, language = f"{prefix}:{item_id}", str(item.get("lang") or "")
    text = html.unescape(text)
    return salvaged("twitter", external_id, text, _created_at(item, item_id), item, language=language)


def _id_of(item: Mapping[str, Any]) -> str:
    value = item.get("id")
    return value if isinstance(value, str) and _is_id(value) else ""


def _mention(tweet: dict[str, Any], users: _Users, me_id: str) -> InboundMessage | None:
    tweet_id = _required(tweet, "id")
    author_id = _required(tweet, "author_id")
    if me_id and author_id == me_id:
        return None
    user = users.get(author_id, {})
    replied = [
        str(ref.get("id", ""))
        for ref in tweet.get("referenced_tweets") or []
        if isinstance(ref, dict) and ref.get("type") == "replied_to"
    ]
    return InboundMessage(
        channel="twitter",
        external_id=f"tweet:{tweet_id}",
        conversation_key=author_id,
        customer_handle=_handle(user, author_id),
        text=html.unescape(_required(tweet, "text")),  # v2 escapes &, < and > in tweet text
        received_at=_created_at(tweet, tweet_id),
        customer_name=str(user.get("name") or ""),
        language=str(tweet.get("lang") or ""),
        reply_to=replied[0] if replied else "",
        raw=tweet,
    )


def _dm(event: dict[str, Any], users: _Users, me_id: str) -> InboundMessage | None:
    event_id = _required(event, "id")
    if event.get("event_type", "MessageCreate") != "MessageCreate":
        return None
    sender_id = _required(event, "sender_id")
    if sender_id == me_id:
        return None
    user = users.get(sender_id, {})
    return InboundMessage(
        channel="twitter",
        external_id=f"dm:{event_id}",
        conversation_key=sender_id,
        customer_handle=_handle(user, sender_id),
        text=html.unescape(_required(event, "text")),
        received_at=_created_at(event, event_id),
        customer_name=str(user.get("name") or ""),
        raw=event,
    )


def data_list(payload: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A page's `data` objects (tweets or DM events); [] for an empty page; `ValueError` if malformed.

    An item that is not an object is logged and left out: it has nothing to read.
    """
    if not isinstance(payload, Mapping):
        raise ValueError("X payload must be a JSON object")
    data = payload.get("data", [])  # an empty page has no "data" at all
    if not isinstance(data, list):
        raise ValueError("X payload: data must be a list of objects")
    items = [item for item in data if isinstance(item, dict)]
    if len(items) < len(data):
        log.warning("X payload: %d item(s) of data are not objects; skipped", len(data) - len(items))
    return items


def _users(payload: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    includes = (payload.get("includes") or {}) if isinstance(payload, Mapping) else {}
    users = (includes.get("users") or []) if isinstance(includes, dict) else []
    return {str(u.get("id")): u for u in users if isinstance(u, dict)}


def _required(item: Mapping[str, Any], key: str) -> str:
    value = item.get(key)
    if not isinstance(value, str) or (key.endswith("id") and not _is_id(value)):
        raise ValueError(f"X payload: an item has no valid {key!r}")
    return value


def _handle(user: Mapping[str, Any], user_id: str) -> str:
    username = user.get("username")
    return f"@{username}" if isinstance(username, str) and username else user_id


def _created_at(item: Mapping[str, Any], item_id: str) -> datetime:
    raw = item.get("created_at")
    if isinstance(raw, str):
        try:
            return datetime.fromisoformat(raw).astimezone(UTC)
        except (ValueError, OverflowError):  # OverflowError: year 9999 west of UTC
            log.warning("X item %s: unreadable created_at %r; its id's time is used", item_id, raw[:40])
    # Snowflake ids embed their creation time (developer.x.com "Twitter IDs").
    return datetime.fromtimestamp(((int(item_id) >> 22) + _TWITTER_EPOCH_MS) / 1000, tz=UTC)


def meta(payload: Mapping[str, Any]) -> dict[str, Any]:
    """A page's `meta` (newest_id, result_count, next_token), {} when absent."""
    found = payload.get("meta")
    return found if isinstance(found, dict) else {}


def id_number(value: str) -> int:
    """A snowflake id as an integer for comparisons; 0 for "" (no cursor yet) or no id at all."""
    return int(value) if _is_id(value) else 0


def _is_id(value: object) -> bool:
    return isinstance(value, str) and _ID.fullmatch(value) is not None


def parse_cursor(since_id: str) -> int:
    """Validate a poll cursor ("" or a numeric id) and return it as an integer."""
    since_id = since_id.strip()
    if since_id and not _is_id(since_id):
        raise ValueError(f"X cursor must be a numeric id, not {since_id!r}")
    return id_number(since_id)


def newest_id(cursor: str, *ids: str) -> str:
    """The newest of `cursor` and `ids` (the next cursor), `cursor` itself when none is newer."""
    best = max([cursor, *ids], key=id_number)
    return best if id_number(best) > id_number(cursor) else cursor


def oldest_first(found: list[InboundMessage], since: int) -> list[InboundMessage]:
    """Messages newer than `since`, without duplicates, in the order they were written."""

    def number(message: InboundMessage) -> int:
        return id_number(message.external_id.partition(":")[2])

    unique = {m.external_id: m for m in found if number(m) > since}
    return sorted(unique.values(), key=number)
