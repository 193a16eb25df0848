"""One delivery never stops the dispatcher: hostile retry hints, a send that blows up, an unreadable
rendition; and a loop that dies anyway is restarted and reported (`/healthz`, `doctor`)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlmodel import select

from broadcaster.cli.doctor import diagnose
from broadcaster.config import Settings
from broadcaster.db import SessionFactory
from broadcaster.delivery.subscribers import NewSubscriber
from broadcaster.models import Delivery, Rendition, utcnow
from broadcaster.web import create_app
from channels.push.webpush import generate_vapid_key
from tests.conftest import make_settings
from tests.e2e.helpers import deliver, draft, follow_up, live_settings, open_, people, subscribe
from tests.e2e.test_faults import dispatching, rows, until
from tests.peers.fcm import FcmPeer
from tests.peers.smtp import SmtpPeer
from tests.peers.telegram import TelegramPeer
from tests.peers.webpush import WebPushEndpoint

pytestmark = pytest.mark.slow
FR = "Le paiement échoue pour une partie d'entre vous. Nous sommes désolés et nous enquêtons."
EN = "Payment is failing for some of you. We are sorry and we are investigating."
LATER = draft("identified", "Nous avons trouvé la cause. Désolés pour la gêne.", "We found the cause. Sorry.")
MAX_PAUSE = 120.0
# Retry-After values a push endpoint (anyone's server) may answer 429 with.
HOSTILE = ["1e12", "inf", "NaN", "-5", "Fri, 31 Dec 9999 23:59:59 GMT", "garbage", "9" * 30, "1000000000000"]


@dataclass(frozen=True, slots=True)
class Pushing:
    settings: Settings  # e-mail to the SMTP peer; push to the FCM peer and the Web Push endpoint
    fcm: FcmPeer
    push: WebPushEndpoint


@pytest.fixture
def pushing(database_url: str, smtp: SmtpPeer, tmp_path: Path) -> Iterator[Pushing]:
    vapid = tmp_path / "vapid.pem"
    generate_vapid_key(vapid)
    with FcmPeer() as fcm, WebPushEndpoint() as push:
        settings = make_settings(database_url, channels={
            "email": {"host": smtp.host, "port": smtp.port, "security": "none", "pool_size": 4},
            "push": {"service_account_file": str(fcm.service_account(tmp_path)), "fcm_base_url": fcm.base_url,
                     "vapid_private_key_file": str(vapid), **push.settings},
        }, dispatch={"max_pause_seconds": MAX_PAUSE})  # fmt: skip
        yield Pushing(settings, fcm, push)


def browsers(*subscriptions: dict[str, Any], first_line: int = 2) -> list[NewSubscriber]:
    return [
        NewSubscriber(push="webpush:" + json.dumps(s), line=first_line + i)
        for i, s in enumerate(subscriptions)
    ]


async def browser_rows(sessions: SessionFactory) -> list[Delivery]:
    return [d for d in await rows(sessions, "push") if d.target.startswith("webpush:")]


async def test_hostile_retry_after_defers_that_browser_only_and_dispatch_goes_on(
    sessions: SessionFactory, smtp: SmtpPeer, pushing: Pushing
) -> None:
    settings, push = pushing.settings, pushing.push
    hostile = {hint: push.subscribe() for hint in HOSTILE}
    for hint, subscription in hostile.items():
        push.throttle(subscription, hint)
    calm = push.subscribe()
    emails = [NewSubscriber(email=f"client{i}@example.com", line=100 + i) for i in range(4)]
    await subscribe(sessions, settings, emails + browsers(*hostile.values(), calm))
    first = await open_(sessions, settings, draft("investigating", FR, EN))
    async with dispatching(sessions, settings):

        async def every_hostile_browser_waits(count: int) -> bool:
            waiting = [d for d in await browser_rows(sessions) if d.status == "pending" and d.attempts == 0]
            return len(waiting) == count

        await until(lambda: every_hostile_browser_waits(len(HOSTILE)))
        assert first.incident.id is not None
        await follow_up(sessions, settings, first.incident.id, LATER)  # the next update goes out too
        assert await asyncio.to_thread(smtp.wait_for, 8, 30)  # 4 people x 2 updates
        assert await asyncio.to_thread(push.wait_for, 2, 30)  # the calm browser, twice
        await until(lambda: every_hostile_browser_waits(2 * len(HOSTILE)))
    assert {r.subscription_id for r in push.records} == {calm["endpoint"].rsplit("/", 1)[1]}
    latest = utcnow() + timedelta(seconds=MAX_PAUSE + 5)
    waiting = [d for d in await browser_rows(sessions) if d.status == "pending"]
    assert all(d.next_attempt_at is not None and d.next_attempt_at <= latest for d in waiting)
    assert all(d.last_error.startswith("rate limited: push service") for d in waiting)
    assert any("max_pause_seconds" in d.last_error for d in waiting)  # the year-9999 date, clamped
    assert all(d.status == "sent" for d in await rows(sessions, "email"))


async def test_one_browsers_rate_limit_does_not_pause_the_push_channel(
    sessions: SessionFactory, pushing: Pushing
) -> None:
    settings, push = pushing.settings, pushing.push
    busy = push.subscribe()
    push.throttle(busy, "900")  # a valid hint, for this one subscription
    await subscribe(sessions, settings, browsers(busy))
    first = await open_(sessions, settings, draft("investigating", FR, EN))
    async with dispatching(sessions, settings):

        async def busy_waits() -> bool:
            return any(d.status == "pending" and d.attempts == 0 for d in await browser_rows(sessions))

        await until(busy_waits)
        await subscribe(sessions, settings, browsers(push.subscribe(), first_line=10))
        assert first.incident.id is not None
        await follow_up(sessions, settings, first.incident.id, LATER)
        assert await asyncio.to_thread(push.wait_for, 1, 20)  # not held back 900 s
    assert len(pushing.fcm.messages) == 2  # the app topic got both updates: the channel never paused


async def test_a_send_that_raises_fails_that_delivery_only(
    database_url: str, sessions: SessionFactory, telegram: TelegramPeer
) -> None:
    settings = live_settings(database_url, None, telegram, max_attempts=1)
    await subscribe(sessions, settings, [p for p in people(16) if p.telegram_chat_id])  # 8 chats
    telegram.rate_limit_next(1, retry_after=10**20)  # python-telegram-bot's timedelta overflows on it
    counts = await deliver(
        sessions, settings, await open_(sessions, settings, draft("investigating", FR, EN))
    )
    assert counts["telegram"] == {"sent": 8, "dead": 1}
    (dead,) = [d for d in await rows(sessions, "telegram") if d.status == "dead"]
    assert dead.last_error == "gave up after 1 attempts: internal error: OverflowError"


async def test_a_huge_telegram_retry_after_waits_at_most_max_pause(
    database_url: str, sessions: SessionFactory, telegram: TelegramPeer
) -> None:
    settings = live_settings(database_url, None, telegram, max_pause_seconds=MAX_PAUSE)
    await subscribe(sessions, settings, [p for p in people(8) if p.telegram_chat_id])
    telegram.rate_limit_next(1, retry_after=10**12)
    counts = await deliver(
        sessions, settings, await open_(sessions, settings, draft("investigating", FR, EN))
    )
    assert counts["telegram"] == {"sent": 4, "pending": 1}
    (waiting,) = [d for d in await rows(sessions, "telegram") if d.status == "pending"]
    assert waiting.next_attempt_at is not None
    assert waiting.next_attempt_at <= utcnow() + timedelta(seconds=MAX_PAUSE + 5)


async def test_an_unreadable_rendition_fails_its_deliveries_alone(
    database_url: str, sessions: SessionFactory
) -> None:
    settings = make_settings(database_url, dispatch={"max_attempts": 1})  # every channel in capture mode
    await subscribe(sessions, settings, people(8))
    published = await open_(sessions, settings, draft("investigating", FR, EN))
    async with sessions() as session:
        (english,) = await session.exec(
            select(Rendition).where(Rendition.channel == "email", Rendition.locale == "en")
        )
        english.payload = '{"channel": "email", "parts": ['  # cut off: a disk, a bad restore
        session.add(english)
        await session.commit()
    counts = await deliver(sessions, settings, published)
    assert counts["email"] == {"captured": 2, "dead": 2}
    assert counts["telegram"] == {"captured": 4}
    dead = [d for d in await rows(sessions, "email") if d.status == "dead"]
    assert {d.locale for d in dead} == {"en"}
    assert all(d.last_error.endswith(f"rendition {english.id} cannot be read") for d in dead)


async def refuse_writes(
    sessions: SessionFactory, table: str, action: str, channel: str, *, refuse: bool
) -> None:
    """A real database failure for one loop: a trigger aborting each `action` (INSERT, UPDATE) of
    `table` rows of `channel`; `refuse=False` drops it."""
    name = f"refuse_{table}_{channel}"
    async with sessions() as session:
        if session.get_bind().dialect.name == "sqlite":
            statements = (
                [
                    f"CREATE TRIGGER {name} BEFORE {action} ON {table} WHEN NEW.channel = '{channel}'"
                    " BEGIN SELECT RAISE(ABORT, 'disk says no'); END"
                ]
                if refuse
                else [f"DROP TRIGGER {name}"]
            )
        else:
            statements = (
                [
                    f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql"
                    " AS $$ BEGIN RAISE EXCEPTION 'disk says no'; END $$",
                    f"CREATE TRIGGER {name} BEFORE {action} ON {table} FOR EACH ROW"
                    f" WHEN (NEW.channel = '{channel}') EXECUTE FUNCTION {name}()",
                ]
                if refuse
                else [f"DROP TRIGGER {name} ON {table}", f"DROP FUNCTION {name}()"]
            )
        for statement in statements:
            await session.exec(text(statement))  # type: ignore[call-overload]
        await session.commit()


async def test_a_channel_loop_that_dies_is_restarted_and_reported_until_it_runs_again(
    database_url: str, sessions: SessionFactory
) -> None:
    settings = make_settings(database_url)  # every channel in capture mode
    await subscribe(sessions, settings, people(8))
    await refuse_writes(sessions, "delivery", "UPDATE", "telegram", refuse=True)
    await open_(sessions, settings, draft("investigating", FR, EN))
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client,
    ):

        async def reported_down() -> bool:
            response = await client.get("/healthz")
            return response.status_code == 503 and response.json()["loops_down"] == ["telegram"]

        async def captured(channel: str) -> bool:
            return all(d.status == "captured" for d in await rows(sessions, channel))

        await until(reported_down)
        await until(lambda: captured("email"))  # the others go on
        doctor = {d.name: d for d in await diagnose(settings)}
        telegram = doctor["telegram loop"]
        assert not telegram.ok and telegram.mode == "live" and "down since" in telegram.detail
        assert "disk says no" not in telegram.detail  # the type only: an error's text may hold data
        await refuse_writes(sessions, "delivery", "UPDATE", "telegram", refuse=False)

        await until(lambda: captured("telegram"))
        await until(lambda: healthy(client))
    assert "telegram loop" not in {d.name for d in await diagnose(settings)}


async def test_a_poller_that_dies_is_restarted_and_reported_and_loses_nothing(
    database_url: str, sessions: SessionFactory
) -> None:
    with TelegramPeer() as telegram:
        settings = live_settings(database_url, None, telegram)
        await refuse_writes(sessions, "inbound_message", "INSERT", "telegram", refuse=True)
        app = create_app(settings, telegram_polling=True)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client,
        ):
            telegram.queue_message(5151, "/status")

            async def reported_down() -> bool:
                response = await client.get("/healthz")
                return response.status_code == 503 and response.json()["loops_down"] == ["telegram:updates"]

            await until(reported_down)
            assert not telegram.texts(5151)
            await refuse_writes(sessions, "inbound_message", "INSERT", "telegram", refuse=False)
            await until(lambda: asyncio.to_thread(telegram.wait_for, 1, 0.5))
            await until(lambda: healthy(client))
        (answer,) = telegram.texts(5151)  # the update was fetched again: its offset was never confirmed
    assert "aucun incident" in answer


async def healthy(client: httpx.AsyncClient) -> bool:
    return (await client.get("/healthz")).json() == {"status": "ok"}
