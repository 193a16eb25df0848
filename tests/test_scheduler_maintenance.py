"""A maintenance's notice ladder, start and end, fired by the scheduler (injected clock, no sleeps)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlmodel import col, select

from broadcaster.config import Settings
from broadcaster.db import SessionFactory
from broadcaster.models import Component, Incident, IncidentUpdate, utcnow
from broadcaster.publishing.maintenance import reschedule_maintenance, schedule_maintenance
from tests.conftest import make_settings
from tests.served import served
from tests.test_scheduler import Clock, scheduler_at

SOCIAL = ["facebook", "telegram", "twitter"]


async def window(
    sessions: SessionFactory,
    settings: Settings,
    now: datetime,
    starts_in: timedelta,
    lasts: timedelta,
    title: str = "Maintenance",
) -> Incident:
    """A maintenance scheduled at `now` to start `starts_in` later, for `lasts`."""
    async with sessions() as session:
        maintenance = await schedule_maintenance(
            session, settings, title=title, starts_at=now + starts_in, ends_at=now + starts_in + lasts,
            components=["checkout"], message={"fr": "Nous mettons à jour le paiement."}, author="cm", now=now,
        )  # fmt: skip
    assert maintenance.id is not None
    return maintenance


async def notices(sessions: SessionFactory, incident_id: int) -> list[tuple[str, list[str]]]:
    """(status, channels) of every notice sent, in order (the announcement stored at scheduling has none)."""
    async with sessions() as session:
        rows = await session.exec(
            select(IncidentUpdate)
            .where(IncidentUpdate.incident_id == incident_id)
            .order_by(col(IncidentUpdate.id))
        )
        return [(u.status, sorted(u.channels)) for u in rows if u.channels]


async def state_of(sessions: SessionFactory, incident_id: int) -> tuple[str, str]:
    async with sessions() as session:
        incident = await session.get(Incident, incident_id)
        component = (await session.exec(select(Component).where(Component.name == "checkout"))).one()
        assert incident is not None
        return incident.status, component.status


async def test_a_maintenance_in_80_hours_gets_its_ladder_then_starts_and_ends(
    sessions: SessionFactory, database_url: str
) -> None:
    settings = make_settings(database_url)
    now = utcnow()
    starts, ends = now + timedelta(hours=80), now + timedelta(hours=82)
    maintenance = await window(sessions, settings, now, timedelta(hours=80), timedelta(hours=2))
    assert maintenance.id is not None
    clock = Clock(now)
    scheduler = scheduler_at(sessions, settings, clock)
    assert [(j.kind, j.run_at) for j in await scheduler.planned()] == [
        ("notice", starts - timedelta(hours=72)),
        ("notice", starts - timedelta(hours=24)),
        ("notice", starts - timedelta(hours=1)),
        ("start", starts),
        ("end", ends),
    ]
    assert await scheduler.run_due() == {}

    async def at(moment: datetime) -> list[str]:
        clock.now = moment
        return list((await scheduler.run_due()).values())

    assert await at(starts - timedelta(hours=72)) == ["done"]
    assert await at(starts - timedelta(hours=24)) == ["done"]
    assert await notices(sessions, maintenance.id) == [("scheduled", ["email"]), ("scheduled", ["push"])]
    # Moved by a day before the last notice: one "rescheduled" notice, the rest move with it.
    later_start, later_end = starts + timedelta(days=1), ends + timedelta(days=1)
    async with sessions() as session:
        await reschedule_maintenance(session, settings, maintenance.id, starts_at=later_start,
                                     ends_at=later_end, now=clock.now, author="cm")  # fmt: skip
    assert len(await notices(sessions, maintenance.id)) == 3
    assert await at(starts - timedelta(hours=1)) == []  # the old time: nothing
    assert [(j.kind, j.run_at) for j in await scheduler.planned()] == [
        ("notice", later_start - timedelta(hours=1)),
        ("start", later_start),
        ("end", later_end),
    ]
    assert await at(later_start - timedelta(hours=1)) == ["done"]
    assert (await notices(sessions, maintenance.id))[-1][1] == SOCIAL
    assert await state_of(sessions, maintenance.id) == ("scheduled", "operational")

    assert await at(later_start) == ["done"]
    assert await state_of(sessions, maintenance.id) == ("in_progress", "maintenance")
    assert await at(later_start + timedelta(minutes=30)) == []
    assert await at(later_end) == ["done"]
    assert await state_of(sessions, maintenance.id) == ("completed", "operational")
    assert await scheduler.planned() == []
    sent = await notices(sessions, maintenance.id)
    assert len(sent) == 6  # 72 h, 24 h, rescheduled, 1 h, started, completed: each once


async def test_a_maintenance_scheduled_two_hours_ahead_notifies_the_earlier_rungs_at_once(
    sessions: SessionFactory, database_url: str
) -> None:
    settings = make_settings(database_url)
    now = utcnow()
    maintenance = await window(sessions, settings, now, timedelta(hours=2), timedelta(hours=1))
    scheduler = scheduler_at(sessions, settings, Clock(maintenance.created_at))
    outcomes = await scheduler.run_due()
    assert sorted(outcomes.values()) == ["done", "done"]  # the 72 h and 24 h notices, now
    assert maintenance.id is not None
    assert sorted(channels for _, channels in await notices(sessions, maintenance.id)) == [
        ["email"],
        ["push"],
    ]


async def test_a_notice_not_sent_before_the_start_is_missed_never_sent_late(
    sessions: SessionFactory, database_url: str
) -> None:
    settings = make_settings(database_url)
    now = utcnow()
    maintenance = await window(sessions, settings, now, timedelta(hours=80), timedelta(hours=1))
    assert maintenance.id is not None
    # The scheduler was down from before the first notice until 10 minutes after the start.
    outcomes = await scheduler_at(sessions, settings, Clock(now + timedelta(hours=80, minutes=10))).run_due()
    assert sorted(outcomes.values()) == [
        "done",
        "missed",
        "missed",
        "missed",
    ]  # started; three notices missed
    assert [phase for phase, _ in await notices(sessions, maintenance.id)] == ["in_progress"]


async def test_the_status_page_shows_a_maintenance_as_upcoming_then_running_then_past(
    sessions: SessionFactory, database_url: str
) -> None:

    from broadcaster.web import create_app

    settings = make_settings(database_url)
    now = utcnow()
    maintenance = await window(
        sessions, settings, now, timedelta(hours=2), timedelta(hours=1), "Mise à jour du paiement"
    )
    app = create_app(settings, dispatch=False)
    french = {"Accept-Language": "fr"}
    async with served(app) as client:
        page = (await client.get("/status", headers=french)).text
        assert "Maintenances prévues" in page and "Tous nos services fonctionnent normalement." in page
        scheduler = scheduler_at(sessions, settings, Clock(maintenance.scheduled_start_at or now))
        await scheduler.run_due()
        page = (await client.get("/status", headers=french)).text
        assert "Maintenance en cours" in page and "Maintenances prévues" not in page
        scheduler = scheduler_at(sessions, settings, Clock(maintenance.scheduled_end_at or now))
        await scheduler.run_due()
        page = (await client.get("/status", headers=french)).text
        assert "Maintenance en cours" not in page and "Tous nos services fonctionnent normalement." in page
        assert "Mise à jour du paiement" in page  # in the history


async def test_a_cancelled_maintenance_leaves_nothing_scheduled(
    sessions: SessionFactory, database_url: str
) -> None:
    from broadcaster.publishing.maintenance import cancel_maintenance

    settings = make_settings(database_url)
    now = utcnow()
    maintenance = await window(sessions, settings, now, timedelta(hours=80), timedelta(hours=1))
    scheduler = scheduler_at(sessions, settings, Clock(now))
    assert len(await scheduler.planned()) == 5
    assert maintenance.id is not None
    async with sessions() as session:
        await cancel_maintenance(session, settings, maintenance.id, now=now, author="cm")
    assert await scheduler.planned() == []
    assert await notices(sessions, maintenance.id) == []  # nobody had been told of it: nobody is told


async def test_the_job_store_follows_a_reschedule_and_a_cancellation(
    sessions: SessionFactory, database_url: str
) -> None:
    from broadcaster.publishing.maintenance import cancel_maintenance

    settings = make_settings(database_url)
    now = utcnow()
    maintenance = await window(sessions, settings, now, timedelta(hours=80), timedelta(hours=1))
    assert maintenance.id is not None and maintenance.scheduled_start_at is not None
    scheduler = scheduler_at(sessions, settings, Clock(now))
    scheduler.start_jobs(paused=True)  # stores and moves jobs, fires none
    try:
        await scheduler.sync()
        start_job = f"maintenance:{maintenance.id}:start"
        assert scheduler.next_run_times()[start_job] == maintenance.scheduled_start_at
        assert len(scheduler.next_run_times()) == 5
        later = maintenance.scheduled_start_at + timedelta(days=1)
        async with sessions() as session:
            moved = {"starts_at": later, "ends_at": later + timedelta(hours=1)}
            await reschedule_maintenance(session, settings, maintenance.id, now=now, author="cm", **moved)
        planned = {job.id: job.run_at for job in await scheduler.sync()}
        assert planned[start_job] == later and len(planned) == 5
        async with sessions() as session:
            await cancel_maintenance(session, settings, maintenance.id, now=now, author="cm")
        assert await scheduler.sync() == []
        assert scheduler.next_run_times() == {}
    finally:
        scheduler.stop_jobs()
