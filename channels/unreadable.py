"""One unreadable item never blocks the others: the rule every inbound parser shares.

An item (a Telegram update, an X tweet or DM event, a Facebook change) whose reading raises
`ValueError` is logged with what is wrong, and skipped; when a customer's text can still be read
in it, it is filed raw, as a conversation of its own keyed by its id, for an agent to read.

    messages = read_each(items, read, describe=lambda item: f"X mention {item['id']}", salvage=salvage)
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import TypeVar

from channels.base import InboundMessage

__all__ = ["read_each", "salvaged"]

log = logging.getLogger(__name__)

Item = TypeVar("Item")


def read_each(
    items: Iterable[Item],
    read: Callable[[Item], InboundMessage | None],
    *,
    describe: Callable[[Item], str],
    salvage: Callable[[Item], InboundMessage | None],
) -> list[InboundMessage]:
    """`read` every item; one that raises `ValueError` is logged as `describe(item)` and `salvage`d."""
    found: list[InboundMessage] = []
    for item in items:
        try:
            message = read(item)
        except ValueError as exc:
            log.warning("%s unreadable: %s", describe(item), exc)
            message = salvage(item)
        if message is not None:
            found.append(message)
    return found


def salvaged(
    channel: str,
    external_id: str,
    text: str,
    received_at: datetime,
    raw: Mapping[str, object],
    *,
    customer_handle: str = "",
    language: str = "",
) -> InboundMessage:
    """An unreadable item's text, filed raw as a conversation of its own (`external_id`)."""
    return InboundMessage(
        channel=channel,
        external_id=external_id,
        conversation_key=external_id,
        customer_handle=customer_handle,
        text=text,
        received_at=received_at,
        language=language,
        raw=raw,
    )
