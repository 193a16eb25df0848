"""An SMTP relay down for a long (time-compressed) outage: retries last a window, not a count."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import pytest

from broadcaster import outbox
from broadcaster.config import Settings
from broadcaster.db import SessionFactory
from broadcaster.subscribers import NewSubscriber
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
    settings = live_settings(database_url, smtp, None)  # the default window: a day
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
