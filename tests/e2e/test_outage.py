"""An SMTP relay down for a long (time-compressed) outage: retries last a window, not a count,
and the channel's breaker tries one row per interval instead of hammering the relay."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager

import pytest

from broadcaster.config import Settings
from broadcaster.db import SessionFactory
from broadcaster.delivery import channel_pause, outbox
from broadcaster.delivery.dispatch import Dispatcher
from broadcaster.delivery.runtimes import build_channels
from broadcaster.delivery.subscribers import NewSubscriber
from broadcaster.models import ChannelPause
from tests.e2e.helpers import draft, live_settings, open_, people, subscribe
from tests.e2e.test_faults import EN, FR, dispatching, rows, until
from tests.peers.smtp import SmtpPeer

pytestmark = pytest.mark.slow
OLD_MAX_ATTEMPTS = 8  # the count that used to bound retries


@asynccontextmanager
async def relay_down(
    sessions: SessionFactory, settings: Settings, smtp: SmtpPeer, audience: Sequence[NewSubscriber]
) -> AsyncIterator[None]:
    """An incident opened for `audience` while the relay answers 421, dispatched for the block."""
    await subscribe(sessions, settings, audience)
    smtp.refuse_all()
    await open_(sessions, settings, draft("investigating", FR, EN))
    async with dispatching(sessions, settings):
        yield


async def test_an_outage_longer_than_the_old_attempt_budget_is_ridden_out(
    database_url: str, sessions: SessionFactory, smtp: SmtpPeer
) -> None:
    settings = live_settings(database_url, smtp, None, breaker_failures=1000)  # the default window: a day
    async with relay_down(sessions, settings, smtp, people(8)):  # 4 e-mail addresses

        async def outlasted() -> bool:
            return all(d.attempts > OLD_MAX_ATTEMPTS for d in await rows(sessions, "email"))

        await until(outlasted, timeout=60)
        assert not any(d.status == "dead" for d in await rows(sessions, "email"))
        smtp.recover()

        async def all_sent() -> bool:
            return all(d.status == "sent" for d in await rows(sessions, "email"))

        await until(all_sent)
    assert len({r for _s, rcpts, _m in smtp.messages for r in rcpts}) == 4


async def test_a_row_goes_dead_once_its_retry_window_has_passed(
    database_url: str, sessions: SessionFactory, smtp: SmtpPeer
) -> None:
    settings = live_settings(database_url, smtp, None, retry_window_seconds=1.5)
    async with relay_down(sessions, settings, smtp, [NewSubscriber(email="later@example.com", line=2)]):
        await until(lambda: settled(sessions))
    (delivery,) = await rows(sessions, "email")
    assert (delivery.status, smtp.messages) == ("dead", [])
    assert delivery.attempts > 1, "retried within the window before giving up"
    assert delivery.last_error.startswith(f"gave up after {delivery.attempts} attempts: unavailable: 421")


async def settled(sessions: SessionFactory) -> bool:
    return all(d.status in outbox.TERMINAL for d in await rows(sessions, "email"))


async def test_a_dead_relay_gets_one_probe_per_interval_and_everyone_once_it_is_back(
    database_url: str, sessions: SessionFactory, smtp: SmtpPeer, caplog: pytest.LogCaptureFixture
) -> None:
    probe_seconds = 0.5
    settings = live_settings(
        database_url,
        smtp,
        None,
        breaker_failures=3,
        breaker_probe_seconds=probe_seconds,
        retry_window_seconds=600,
    )
    await subscribe(sessions, settings, people(80))  # 40 e-mail addresses
    smtp.refuse_all()
    await open_(sessions, settings, draft("investigating", FR, EN))
    runtimes = build_channels(settings, sessions)
    dispatcher = Dispatcher(sessions, runtimes, settings.dispatch, settings.server.public_base_url)
    breaker = dispatcher.workers["email"].breaker
    stop = asyncio.Event()
    caplog.set_level(logging.INFO, "broadcaster.delivery.dispatch")
    task = asyncio.create_task(dispatcher.run(stop))
    try:

        async def is_open() -> bool:
            return breaker.is_open

        await until(is_open)
        await until(probed(sessions, await attempts(sessions) + 1))  # the sends in flight have ended
        connections, tries, since = smtp.connections, await attempts(sessions), time.monotonic()
        await until(probed(sessions, tries + 4))
        intervals = (time.monotonic() - since) / probe_seconds
        assert smtp.connections - connections <= intervals + 2, "about one connection per probe interval"
        assert sum(d.attempts == 0 for d in await rows(sessions, "email")) >= 10, "the rest were never tried"
        assert breaker.opened_at and (await pauses(sessions))["email"].opened_at == breaker.opened_at
        smtp.recover()

        async def all_sent() -> bool:
            return all(d.status == "sent" for d in await rows(sessions, "email"))

        await until(all_sent)
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=30)
        for runtime in runtimes.values():
            await runtime.channel.aclose()
    assert not breaker.is_open and await pauses(sessions) == {}
    received = Counter(r for _s, rcpts, _m in smtp.messages for r in rcpts)
    assert len(received) == 40 and set(received.values()) == {1}
    events = [r.getMessage() for r in caplog.records]
    assert events.count("channel breaker open") == 1 and events.count("channel breaker closed") == 1


async def attempts(sessions: SessionFactory) -> int:
    return sum(d.attempts for d in await rows(sessions, "email"))


def probed(sessions: SessionFactory, tries: int) -> Callable[[], Awaitable[bool]]:
    async def reached() -> bool:
        return await attempts(sessions) >= tries

    return reached


async def pauses(sessions: SessionFactory) -> dict[str, ChannelPause]:
    async with sessions() as session:
        return await channel_pause.paused(session)


async def test_rows_whose_window_passes_while_the_channel_is_paused_go_dead_untried(
    database_url: str, sessions: SessionFactory, smtp: SmtpPeer
) -> None:
    settings = live_settings(
        database_url,
        smtp,
        None,
        breaker_failures=1,
        breaker_probe_seconds=0.3,
        retry_window_seconds=1.5,
        batch_size=1,
    )
    async with relay_down(sessions, settings, smtp, people(60)):  # 30 e-mail addresses
        await until(lambda: settled(sessions))
    found = await rows(sessions, "email")
    assert {d.status for d in found} == {"dead"} and smtp.messages == []
    untried = [d for d in found if d.attempts == 0]
    assert len(untried) >= 10, "not one row per probe"
    assert {d.last_error for d in untried} == {"gave up: retry window passed while the channel was paused"}
