"""Telegram's flood limits held from outside: a peer refusing with 429 whatever goes over 30/s in
any sliding second (here a higher cap, the same rule, to keep the run short), 1/s per chat and
20/min per group sees none from one worker paced at that cap."""

from __future__ import annotations

import pytest

from broadcaster.db import SessionFactory
from broadcaster.subscribers import NewSubscriber
from tests.conftest import make_settings
from tests.e2e.helpers import TOKEN, deliver, draft, open_, subscribe
from tests.peers.telegram import TelegramPeer

pytestmark = pytest.mark.slow
CAP = 150  # messages in any sliding second, enforced by the peer and configured for the worker
CHATS = 1_000


async def test_one_worker_at_the_cap_draws_no_429_and_reaches_every_chat_once(
    database_url: str, sessions: SessionFactory, telegram: TelegramPeer
) -> None:
    telegram.enforce_limits(per_second=CAP, per_chat=1.0, per_group=20)
    settings = make_settings(database_url, channels={"telegram": {
        "token": TOKEN, "base_url": telegram.base_url, "channel_id": "@shop_status", "concurrency": 16,
        "rate_per_second": CAP, "per_chat_interval_seconds": 1.0, "per_group_per_minute": 20,
    }})  # fmt: skip
    chats = [str(100_000 + i) for i in range(CHATS - 10)] + [str(-1_000_000 - i) for i in range(10)]
    await subscribe(
        sessions, settings, [NewSubscriber(telegram_chat_id=c, line=i + 2) for i, c in enumerate(chats)]
    )
    published = await open_(sessions, settings, draft("investigating", "Paiement en panne.", "Payment down."))

    counts = await deliver(sessions, settings, published, timeout=120)

    assert telegram.flood is not None and telegram.flood.refused == 0
    assert counts["telegram"] == {"sent": CHATS + 1}  # every chat and the public channel post
    for chat in [*chats, "@shop_status"]:
        assert len(telegram.texts(chat)) == 1, chat
