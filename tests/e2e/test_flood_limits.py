"""Telegram's flood limits held from outside: a peer refusing with 429 whatever goes over 30/s in
any sliding second (here a higher cap, the same rule, to keep the run short), 1/s per chat and
20/min per group sees none from one worker paced at that cap."""

from __future__ import annotations

import asyncio

import pytest

from broadcaster.config import Settings
from broadcaster.db import SessionFactory, create_engine, session_factory
from broadcaster.delivery.subscribers import NewSubscriber
from tests.conftest import make_settings
from tests.e2e.helpers import TOKEN, deliver, draft, open_, subscribe
from tests.peers.telegram import TelegramPeer

pytestmark = pytest.mark.slow
CAP = 150  # messages in any sliding second, enforced by the peer and configured for the worker
CHATS = 1_000


def at_the_cap(database_url: str, telegram: TelegramPeer, *, per_chat: float, concurrency: int) -> Settings:
    """Settings of a worker paced at what the peer enforces."""
    telegram.enforce_limits(per_second=CAP, per_chat=per_chat, per_group=20)
    return make_settings(database_url, channels={"telegram": {
        "token": TOKEN, "base_url": telegram.base_url, "channel_id": "@shop_status",
        "concurrency": concurrency, "rate_per_second": CAP, "per_chat_interval_seconds": per_chat,
        "per_group_per_minute": 20,
    }})  # fmt: skip


async def subscribe_chats(sessions: SessionFactory, settings: Settings, chats: list[str]) -> None:
    await subscribe(
        sessions, settings, [NewSubscriber(telegram_chat_id=c, line=i + 2) for i, c in enumerate(chats)]
    )


async def test_one_worker_at_the_cap_draws_no_429_and_reaches_every_chat_once(
    database_url: str, sessions: SessionFactory, telegram: TelegramPeer
) -> None:
    settings = at_the_cap(database_url, telegram, per_chat=1.0, concurrency=16)
    chats = [str(100_000 + i) for i in range(CHATS - 10)] + [str(-1_000_000 - i) for i in range(10)]
    await subscribe_chats(sessions, settings, chats)
    published = await open_(sessions, settings, draft("investigating", "Paiement en panne.", "Payment down."))

    counts = await deliver(sessions, settings, published, timeout=120)

    assert telegram.flood is not None and telegram.flood.refused == 0
    assert counts["telegram"] == {"sent": CHATS + 1}  # every chat and the public channel post
    for chat in [*chats, "@shop_status"]:
        assert len(telegram.texts(chat)) == 1, chat


async def test_a_message_split_in_two_counts_twice_against_the_cap(
    database_url: str, sessions: SessionFactory, telegram: TelegramPeer
) -> None:
    settings = at_the_cap(database_url, telegram, per_chat=0.5, concurrency=200)
    chats = [str(200_000 + i) for i in range(300)]
    await subscribe_chats(sessions, settings, chats)
    long = "\n\n".join(["Le paiement échoue pour une partie d'entre vous, nous enquêtons."] * 80)  # > 4,096
    published = await open_(sessions, settings, draft("investigating", long, long))

    counts = await deliver(sessions, settings, published, timeout=120)

    assert counts["telegram"] == {"sent": len(chats) + 1}
    assert all(len(telegram.texts(chat)) == 2 for chat in chats)  # two Telegram messages each, once
    assert telegram.flood is not None and telegram.flood.refused == 0


@pytest.fixture(params=["postgresql", "redis"])
def shared_budget(request: pytest.FixtureRequest, pg_database_url: str) -> dict[str, str]:
    """Where two workers on one PostgreSQL keep their budget: the database, or Redis."""
    return {"redis_url": request.getfixturevalue("redis_url")} if request.param == "redis" else {}


async def test_two_workers_share_one_budget_and_draw_no_429(
    pg_database_url: str, shared_budget: dict[str, str], telegram: TelegramPeer
) -> None:
    settings = at_the_cap(pg_database_url, telegram, per_chat=1.0, concurrency=16)
    settings = settings.model_copy(update={"dispatch": settings.dispatch.model_validate(shared_budget)})
    chats = [str(300_000 + i) for i in range(CHATS + 200)]
    engines = [create_engine(pg_database_url) for _ in range(2)]
    sessions = [session_factory(engine) for engine in engines]
    try:
        await subscribe_chats(sessions[0], settings, chats)
        published = await open_(
            sessions[0], settings, draft("investigating", "Paiement en panne.", "Payment down.")
        )

        # Two workers, each with its own connections, its own pacer and the same bot.
        both = await asyncio.gather(*[deliver(s, settings, published, timeout=120) for s in sessions])
    finally:
        for engine in engines:
            await engine.dispose()

    assert telegram.flood is not None and telegram.flood.refused == 0
    assert both[0]["telegram"] == {"sent": len(chats) + 1}
    assert all(len(telegram.texts(chat)) == 1 for chat in [*chats, "@shop_status"])
