"""Provider faults: an SMTP relay refusing then recovering, a Telegram 429 storm, one channel down."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from sqlmodel import select

from broadcaster.config import Settings
from broadcaster.db import SessionFactory
from broadcaster.delivery import outbox
from broadcaster.delivery.dispatch import Dispatcher
from broadcaster.delivery.runtimes import build_channels
from broadcaster.delivery.subscribers import NewSubscriber
from broadcaster.models import Delivery, Subscription
from tests.e2e.helpers import draft, live_settings, open_, people, subscribe
from tests.peers.smtp import SmtpPeer
from tests.peers.telegram import TelegramPeer

pytestmark = pytest.mark.slow
FR = "Le paiement échoue pour une partie d'entre vous. Nous sommes désolés et nous enquêtons."
EN = "Payment is failing for some of you. We are sorry and we are investigating."


@asynccontextmanager
async def dispatching(sessions: SessionFactory, settings: Settings) -> AsyncIterator[None]:
    """Run the dispatcher in the background for the duration of the block."""
    runtimes = build_channels(settings, sessions)
    stop = asyncio.Event()
    task = asyncio.create_task(
        Dispatcher(sessions, runtimes, settings.dispatch, settings.server.public_base_url).run(stop)
    )
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=30)
        for runtime in runtimes.values():
            await runtime.channel.aclose()


async def rows(sessions: SessionFactory, channel: str) -> list[Delivery]:
    async with sessions() as session:
        return list(await session.exec(select(Delivery).where(Delivery.channel == channel)))


async def until(predicate, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    """Re-check an async predicate (bounded) — progress is observed, never timed."""
    for _ in range(int(timeout / 0.05)):
        if await predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not reached in time")


async def test_smtp_refusing_then_recovering_delivers_everyone_once(
    database_url: str, sessions: SessionFactory, smtp: SmtpPeer
) -> None:
    settings = live_settings(database_url, smtp, None, breaker_failures=1000)  # every row retries alone
    await subscribe(sessions, settings, people(40))  # 20 e-mail addresses
    smtp.refuse_all()
    await open_(sessions, settings, draft("investigating", FR, EN))
    async with dispatching(sessions, settings):

        async def all_retried() -> bool:
            found = await rows(sessions, "email")
            return all(d.attempts >= 1 and d.status == "pending" and d.last_error for d in found)

        await until(all_retried)
        assert smtp.messages == []
        smtp.recover()
        assert await asyncio.to_thread(smtp.wait_for, 20, 30)

        async def all_sent() -> bool:
            return all(d.status == "sent" for d in await rows(sessions, "email"))

        await until(all_sent)
    received = Counter(r for _s, rcpts, _m in smtp.messages for r in rcpts)
    assert len(received) == 20 and set(received.values()) == {1}


async def test_telegram_429_storm_is_waited_out_without_losing_or_doubling(
    database_url: str, sessions: SessionFactory, telegram: TelegramPeer
) -> None:
    settings = live_settings(database_url, None, telegram)
    await subscribe(sessions, settings, people(40))  # 20 chats
    telegram.rate_limit_next(25, retry_after=1)
    await open_(sessions, settings, draft("investigating", FR, EN))
    async with dispatching(sessions, settings):
        assert await asyncio.to_thread(telegram.wait_for, 21, 60)  # 20 chats + the channel post

        async def all_sent() -> bool:
            return all(d.status == "sent" for d in await rows(sessions, "telegram"))

        await until(all_sent)
    per_chat = Counter(m["chat_id"] for m in telegram.messages)
    assert len(per_chat) == 21 and set(per_chat.values()) == {1}
    # A rate-limit wait does not use up a retry: nobody was pushed towards `dead`.
    assert all(d.attempts == 1 for d in await rows(sessions, "telegram"))


async def test_one_channel_down_does_not_hold_back_the_other(
    database_url: str, sessions: SessionFactory, smtp: SmtpPeer, telegram: TelegramPeer
) -> None:
    settings = live_settings(database_url, smtp, telegram)
    await subscribe(sessions, settings, people(80))  # 40 e-mails, 40 chats
    telegram.down = True
    await open_(sessions, settings, draft("investigating", FR, EN))
    async with dispatching(sessions, settings):
        assert await asyncio.to_thread(smtp.wait_for, 40, 30)

        async def email_done() -> bool:
            return all(d.status == "sent" for d in await rows(sessions, "email"))

        await until(email_done)
        # E-mail is complete while every Telegram delivery is still retrying.
        telegram_rows = await rows(sessions, "telegram")
        assert telegram_rows and all(d.status in ("pending", "sending") for d in telegram_rows)
        assert telegram.messages == []
        telegram.down = False

        async def telegram_done() -> bool:
            return all(d.status == "sent" for d in await rows(sessions, "telegram"))

        await until(telegram_done)
    assert len(telegram.messages) == 41


async def test_permanent_refusals_fail_and_deactivate_the_subscription(
    database_url: str, sessions: SessionFactory, smtp: SmtpPeer, telegram: TelegramPeer
) -> None:
    settings = live_settings(database_url, smtp, telegram, max_attempts=2)
    await subscribe(
        sessions,
        settings,
        [
            NewSubscriber(email="gone@example.com", line=2),
            NewSubscriber(email="ok@example.com", line=3),
            NewSubscriber(telegram_chat_id="4242", line=4),
        ],
    )
    smtp.reject("gone@example.com")
    telegram.block(4242)
    telegram.known_chats = {"4242"}  # the public channel does not exist: 400 chat not found
    await open_(sessions, settings, draft("investigating", FR, EN))
    async with dispatching(sessions, settings):

        async def settled() -> bool:
            found = await rows(sessions, "email") + await rows(sessions, "telegram")
            return all(d.status in outbox.TERMINAL for d in found)

        await until(settled)
    by_target = {d.target: d for d in await rows(sessions, "email") + await rows(sessions, "telegram")}
    assert by_target["ok@example.com"].status == "sent"
    assert by_target["gone@example.com"].status == "failed"
    assert "550" in by_target["gone@example.com"].last_error
    assert by_target["4242"].status == "failed"
    assert "blocked" in by_target["4242"].last_error
    async with sessions() as session:
        inactive = {
            s.address: s.deactivated_reason for s in await session.exec(select(Subscription)) if not s.active
        }
    assert set(inactive) == {"gone@example.com", "4242"}


async def test_exhausted_retries_go_dead_with_the_reason(
    database_url: str, sessions: SessionFactory, smtp: SmtpPeer
) -> None:
    settings = live_settings(database_url, smtp, None, max_attempts=2)
    await subscribe(sessions, settings, [NewSubscriber(email="later@example.com", line=2)])
    smtp.refuse_all()
    await open_(sessions, settings, draft("investigating", FR, EN))
    async with dispatching(sessions, settings):

        async def dead() -> bool:
            return all(d.status == "dead" for d in await rows(sessions, "email"))

        await until(dead)
    (delivery,) = await rows(sessions, "email")
    assert delivery.attempts == 2
    assert delivery.last_error.startswith("gave up after 2 attempts: unavailable:")
    assert "421" in delivery.last_error


async def test_a_group_at_its_minute_limit_waits_alone_while_the_channel_goes_on(
    database_url: str, sessions: SessionFactory
) -> None:
    with TelegramPeer() as telegram:
        settings = live_settings(database_url, None, telegram)
        group = settings.channels.telegram.model_copy(
            update={"channel_id": "-1009", "per_group_per_minute": 1}
        )
        settings = settings.model_copy(
            update={"channels": settings.channels.model_copy(update={"telegram": group})}
        )
        await subscribe(sessions, settings, [p for p in people(16) if p.telegram_chat_id])  # 8 private chats
        payment = draft("investigating", "Paiement en panne, désolés.", "Sorry.")
        delivery = draft("investigating", "Livraison en retard, désolés.", "Sorry.")
        first = await open_(sessions, settings, payment, force=True)
        second = await open_(sessions, settings, delivery, title="Retards", force=True)
        runtimes = build_channels(settings, sessions)
        dispatcher = Dispatcher(sessions, runtimes, settings.dispatch, "http://t")
        try:
            assert first.update.id is not None and second.update.id is not None
            counts = await dispatcher.deliver([first.update.id, second.update.id], retry_horizon=5)
        finally:
            for runtime in runtimes.values():
                await runtime.channel.aclose()
    assert counts["telegram"] == {"sent": 17, "pending": 1}  # 16 private messages + one group post
    assert len(telegram.texts("-1009")) == 1
    async with sessions() as session:
        (waiting,) = await session.exec(select(Delivery).where(Delivery.status == "pending"))
    assert waiting.target == "-1009" and waiting.attempts == 0  # waiting is not a failed try
    assert "messages a minute" in waiting.last_error
