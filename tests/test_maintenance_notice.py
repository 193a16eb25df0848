"""Only those already told hear about a change of a maintenance (issue #10, item 5).

Before the first rung of the notice ladder went out, cancelling or rescheduling sends nothing and
the scheduler's jobs follow the plan; once some rungs went out, the change reaches exactly the
channels and subscriptions that received an earlier notice (scheduler with an injected clock).
"""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import col, select

from broadcaster.config import Settings
from broadcaster.db import SessionFactory
from broadcaster.delivery.subscribers import NewSubscriber
from broadcaster.models import Delivery, utcnow
from broadcaster.publishing.incidents import Published
from broadcaster.publishing.maintenance import Unannounced, cancel_maintenance, reschedule_maintenance
from tests.conftest import make_settings
from tests.e2e.helpers import subscribe
from tests.test_scheduler import Clock, scheduler_at
from tests.test_scheduler_maintenance import window

TELEGRAM_CHANNEL = "@maison_exemple_statut"


def _settings(database_url: str) -> Settings:
    return make_settings(database_url, channels={"telegram": {"channel_id": TELEGRAM_CHANNEL}})


async def _targets(sessions: SessionFactory, update_id: int | None = None) -> set[tuple[str, str]]:
    """(channel, target) of every delivery, or of one update's."""
    async with sessions() as session:
        statement = select(Delivery)
        if update_id is not None:
            statement = statement.where(col(Delivery.update_id) == update_id)
        return {(d.channel, d.target) for d in await session.exec(statement)}


async def test_before_the_first_notice_a_change_sends_nothing_and_the_plan_moves(
    database_url: str, sessions: SessionFactory
) -> None:
    settings = _settings(database_url)
    await subscribe(
        sessions, settings, [NewSubscriber(email="a@example.com", telegram_chat_id="1001", line=2)]
    )
    now = utcnow()
    maintenance = await window(sessions, settings, now, timedelta(hours=80), timedelta(hours=2))
    assert maintenance.id is not None and maintenance.scheduled_start_at is not None
    scheduler = scheduler_at(sessions, settings, Clock(now))
    stored_before = await scheduler.planned()  # what APScheduler's store holds until its next sync

    later = maintenance.scheduled_start_at + timedelta(days=1)
    async with sessions() as session:
        moved = await reschedule_maintenance(
            session, settings, maintenance.id, starts_at=later, ends_at=later + timedelta(hours=2), now=now,
            author="cm",
        )  # fmt: skip
    assert await _targets(sessions) == set()  # nobody had been told: nobody hears of the move
    assert isinstance(moved, Unannounced) and moved.incident.scheduled_start_at == later
    assert [(job.kind, job.run_at) for job in await scheduler.planned()] == [
        ("notice", later - timedelta(hours=72)),
        ("notice", later - timedelta(hours=24)),
        ("notice", later - timedelta(hours=1)),
        ("start", later),
        ("end", later + timedelta(hours=2)),
    ]
    # The 72 h rung fires at its old time before the store caught up with the move: it does nothing.
    assert await scheduler.run_job(stored_before[0]) == "stale"
    assert await _targets(sessions) == set()

    async with sessions() as session:
        cancelled = await cancel_maintenance(session, settings, maintenance.id, now=now, author="cm")
    assert await _targets(sessions) == set()
    assert isinstance(cancelled, Unannounced) and cancelled.incident.status == "cancelled"
    assert await scheduler.planned() == []


async def test_after_some_rungs_a_change_reaches_exactly_those_told(
    database_url: str, sessions: SessionFactory
) -> None:
    settings = _settings(database_url)
    await subscribe(
        sessions,
        settings,
        [
            NewSubscriber(email="told@example.com", telegram_chat_id="1001", push="fcm:device-1", line=2),
            NewSubscriber(email="bounced@example.com", line=3),
            NewSubscriber(email="app-only@example.com", components=("mobile-app",), line=4),  # not concerned
        ],
    )
    now = utcnow()
    maintenance = await window(sessions, settings, now, timedelta(hours=80), timedelta(hours=2))
    assert maintenance.id is not None and maintenance.scheduled_start_at is not None
    start = maintenance.scheduled_start_at
    clock = Clock(start - timedelta(hours=72))
    scheduler = scheduler_at(sessions, settings, clock)
    assert list((await scheduler.run_due()).values()) == ["done"]  # the 72 h rung: e-mail
    assert await _targets(sessions) == {("email", "told@example.com"), ("email", "bounced@example.com")}
    async with sessions() as session:  # that e-mail bounced for good: its reader was never told
        bounced = (await session.exec(select(Delivery).where(Delivery.target == "bounced@example.com"))).one()
        bounced.status = "dead"
        session.add(bounced)
        await session.commit()
    # Subscribed after the notice: never heard of this maintenance.
    await subscribe(
        sessions, settings, [NewSubscriber(email="late@example.com", telegram_chat_id="2002", line=2)]
    )

    later = start + timedelta(days=1)
    async with sessions() as session:
        moved = await reschedule_maintenance(
            session, settings, maintenance.id, starts_at=later, ends_at=later + timedelta(hours=2),
            now=clock.now, author="cm",
        )  # fmt: skip
    assert isinstance(moved, Published) and moved.update.id is not None
    assert await _targets(sessions, moved.update.id) == {("email", "told@example.com")}
    assert moved.update.channels == ["email"] and moved.deliveries == {"email": 1}

    # The 24 h rung (push: the topic and the device) and the 1 h rung (X, Facebook, Telegram: the
    # channel post and every Telegram subscriber, the late one included) go out at the new times.
    clock.now = later - timedelta(hours=24)
    assert list((await scheduler.run_due()).values()) == ["done"]
    clock.now = later - timedelta(hours=1)
    assert list((await scheduler.run_due()).values()) == ["done"]
    async with sessions() as session:
        cancelled = await cancel_maintenance(session, settings, maintenance.id, now=clock.now, author="cm")
    assert isinstance(cancelled, Published) and cancelled.update.id is not None
    assert await _targets(sessions, cancelled.update.id) == {
        ("email", "told@example.com"),
        ("push", "topic:all"),
        ("push", "fcm:device-1"),
        ("twitter", "timeline"),
        ("facebook", "page"),
        ("telegram", TELEGRAM_CHANNEL),
        ("telegram", "1001"),
        ("telegram", "2002"),
    }  # not the bounced address, not late@ by e-mail, nothing on the blog (never told there)
    assert sorted(cancelled.update.channels) == ["email", "facebook", "push", "telegram", "twitter"]
