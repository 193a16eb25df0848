"""Every channel's limits as data, including channels whose live adapter is not built yet.

Compose reads these to split or truncate after rendering; dispatch reads the default rates.
"""

from __future__ import annotations

from channels.base import Capabilities, Inbound, Overflow

__all__ = ["CAPABILITIES", "CHANNEL_NAMES"]

CAPABILITIES: dict[str, Capabilities] = {
    # X: 280 weighted characters, URLs count 23 (developer.x.com "counting characters").
    "twitter": Capabilities(max_body=280, overflow=Overflow.SPLIT, inbound=Inbound.POLL, threads=True),
    # Facebook page posts accept 63,206 characters.
    "facebook": Capabilities(
        max_body=63206, overflow=Overflow.TRUNCATE, inbound=Inbound.WEBHOOK, threads=True
    ),
    # Telegram sendMessage: 1-4096 characters after entities parsing (rates: [channels.telegram]).
    "telegram": Capabilities(
        max_body=4096,
        overflow=Overflow.SPLIT,
        inbound=Inbound.WEBHOOK,
    ),
    # RFC 5322 recommends lines (so a one-line subject) of at most 78 characters.
    "email": Capabilities(max_body=0, max_title=78, overflow=Overflow.TRUNCATE, inbound=Inbound.WEBHOOK),
    # Lock screens show about 178 characters of body and 50 of title (iOS / Android).
    "push": Capabilities(max_body=178, max_title=50, overflow=Overflow.TRUNCATE),
    "blog": Capabilities(max_body=0, max_title=120, overflow=Overflow.TRUNCATE, threads=True),
}

#: Every channel of the product, in the order previews show them.
CHANNEL_NAMES: tuple[str, ...] = tuple(CAPABILITIES)
