"""Kept promises: a next update not posted in time reminds the staff, then posts the holding message.

The clock is injected: `Scheduler.run_due()` runs what APScheduler would fire at that time.
"""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlmodel import col, select

from broadcaster.compose.render import Composer
from broadcaster.config import Settings
from broadcaster.db import SessionFactory
from broadcaster.models import Delivery, Incident, IncidentUpdate, utcnow
from broadcaster.schedule.report import schedule_report
from broadcaster.schedule.runner import Scheduler
from tests.conftest import make_settings
from tests.e2e.helpers import draft, follow_up, open_

ON_CALL = "oncall@shop.example"
STAFF_CHAT = "-1001234567890"


def promise_settings(database_url: str, **sections: Any) -> Settings:
    return make_settings(database_url, staff={"email": ON_CALL, "telegram_chat_id": STAFF_CHAT}, **sections)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def scheduler_at(sessions: SessionFactory, settings: Settings, clock: Clock) -> Scheduler:
    return Scheduler(settings, sessions, Composer(default_locale="fr"), clock=clock)


async def staff_alerts(sessions: SessionFactory) -> list[Delivery]:
    async with sessions() as session:
        rows = await session.exec(
            select(Delivery).where(col(Delivery.update_id).is_(None), col(Delivery.message_id).is_(None))
        )
        return list(rows)


async def updates_of(sessions: SessionFactory, incident_id: int) -> list[IncidentUpdate]:
    async with sessions() as session:
        rows = await session.exec(
            select(IncidentUpdate)
            .where(IncidentUpdate.incident_id == incident_id)
            .order_by(col(IncidentUpdate.id))
        )
        return list(rows)


async def open_major(sessions: SessionFactory, settings: Settings, **kw: Any) -> Incident:
    published = await open_(
        sessions, settings, draft("investigating", "Le paiement est indisponible. Nous enquêtons.",
                                  "Payment is down. We are investigating."), **kw
    )  # fmt: skip
    return published.incident


async def test_a_missed_promise_reminds_the_staff_then_posts_the_holding_message_once(
    sessions: SessionFactory, database_url: str
) -> None:
    settings = promise_settings(database_url)
    incident = await open_major(sessions, settings)
    assert incident.id is not None and incident.next_update_at is not None
    due = incident.next_update_at
    assert timedelta(minutes=60) <= due - incident.created_at < timedelta(minutes=61)  # major: 60 min
    clock = Clock(due - timedelta(minutes=1))
    scheduler = scheduler_at(sessions, settings, clock)

    assert await scheduler.run_due() == {}
    clock.now = due
    assert list((await scheduler.run_due()).values()) == ["done"]
    alerts = await staff_alerts(sessions)
    assert sorted((a.channel, a.target) for a in alerts) == [("email", ON_CALL), ("telegram", STAFF_CHAT)]
    email = json.loads(next(a.payload for a in alerts if a.channel == "email"))
    assert f"incident update {incident.id}" in email["parts"][0]  # one command away from posting

    clock.now = due + timedelta(minutes=5)
    assert await scheduler.run_due() == {}  # reminded once, holding message not yet
    clock.now = due + timedelta(minutes=settings.schedule.holding_grace_minutes)
    assert list((await scheduler.run_due()).values()) == ["done"]
    first, holding = await updates_of(sessions, incident.id)
    assert holding.author.startswith("scheduler")
    assert holding.messages["fr"] == settings.schedule.holding_message["fr"]
    assert holding.messages["en"] == settings.schedule.holding_message["en"]
    assert holding.channels == first.channels and holding.status == first.status
    assert holding.next_update_at is not None and holding.next_update_at > due  # a new promise
    assert await scheduler.run_due() == {}  # nothing twice
    assert len(await staff_alerts(sessions)) == 2


async def test_an_update_in_time_cancels_the_reminder_and_the_holding_message(
    sessions: SessionFactory, database_url: str
) -> None:
    settings = promise_settings(database_url)
    incident = await open_major(sessions, settings)
    assert incident.id is not None and incident.next_update_at is not None
    due = incident.next_update_at
    in_time = draft("identified", "Cause trouvée.", "Cause found.", next_update_at=due + timedelta(hours=2))
    await follow_up(sessions, settings, incident.id, in_time)
    clock = Clock(due + timedelta(minutes=settings.schedule.holding_grace_minutes + 1))
    assert await scheduler_at(sessions, settings, clock).run_due() == {}
    assert await staff_alerts(sessions) == []
    assert len(await updates_of(sessions, incident.id)) == 2


async def test_an_incident_without_holding_messages_only_reminds(
    sessions: SessionFactory, database_url: str
) -> None:
    settings = promise_settings(database_url)
    incident = await open_major(sessions, settings, impact="critical", holding_messages=False)
    assert incident.id is not None and incident.next_update_at is not None
    assert incident.next_update_at - incident.created_at < timedelta(minutes=31)  # critical: 30 min
    clock = Clock(incident.next_update_at + timedelta(hours=1))
    assert list((await scheduler_at(sessions, settings, clock).run_due()).values()) == ["done"]
    assert len(await updates_of(sessions, incident.id)) == 1
    assert len(await staff_alerts(sessions)) == 2


async def test_a_job_fired_twice_at_once_acts_once(sessions: SessionFactory, database_url: str) -> None:
    settings = promise_settings(database_url)
    incident = await open_major(sessions, settings)
    assert incident.next_update_at is not None
    clock = Clock(incident.next_update_at)
    one, two = scheduler_at(sessions, settings, clock), scheduler_at(sessions, settings, clock)
    (job,) = [j for j in await one.planned() if j.kind == "reminder"]
    outcomes = await asyncio.gather(one.run_job(job), two.run_job(job))
    assert sorted(outcomes) in (["done", "duplicate"], ["done", "stale"])
    assert len(await staff_alerts(sessions)) == 2


async def test_a_job_past_its_grace_is_reported_missed_not_run(
    sessions: SessionFactory, database_url: str
) -> None:
    settings = promise_settings(database_url)
    incident = await open_major(sessions, settings, holding_messages=False)
    assert incident.next_update_at is not None
    clock = Clock(
        incident.next_update_at + timedelta(minutes=settings.schedule.grace_minutes["reminder"] + 1)
    )
    assert list((await scheduler_at(sessions, settings, clock).run_due()).values()) == ["missed"]
    assert await staff_alerts(sessions) == []
    report = await schedule_report(sessions, settings, clock.now)
    assert report["pending"] == []
    (missed,) = report["missed"]
    assert missed["kind"] == "reminder" and missed["incident_id"] == incident.id


async def test_the_schedule_lists_what_comes_by_time(sessions: SessionFactory, database_url: str) -> None:
    settings = promise_settings(database_url)
    first = await open_major(sessions, settings, impact="critical")
    second = await open_major(sessions, settings, title="Site lent", impact="minor", components=["website"])
    report = await schedule_report(sessions, settings, first.created_at)
    listed = [(job["incident_id"], job["kind"]) for job in report["pending"]]
    assert listed == [
        (first.id, "reminder"),
        (first.id, "holding"),
        (second.id, "reminder"),
        (second.id, "holding"),
    ]
    holding = report["pending"][1]
    assert holding["channels"] and holding["what"] == "holding message"


async def test_bad_cadence_configuration_names_the_key(database_url: str) -> None:
    from broadcaster.config import ConfigError

    with pytest.raises(ConfigError, match="cadence_minutes"):
        make_settings(database_url, schedule={"cadence_minutes": {"major": 0}})


async def test_a_resolved_incident_reminds_the_staff_of_its_postmortem_with_a_draft(
    sessions: SessionFactory, database_url: str
) -> None:
    from broadcaster.publishing.postmortem import save_postmortem
    from tests.e2e.helpers import resolve

    settings = promise_settings(database_url)
    first, second = await open_major(sessions, settings), await open_major(sessions, settings)
    for incident in (first, second):
        assert incident.id is not None
        await resolve(sessions, settings, incident.id, draft("resolved", "Le paiement fonctionne. Merci !",
                                                            "Payment works again. Thank you!"))  # fmt: skip
    async with sessions() as session:  # the staff wrote the second one's report already
        assert second.id is not None
        await save_postmortem(session, second.id, "# Rapport\n\nDéjà écrit.")
    scheduler = scheduler_at(sessions, settings, Clock(utcnow()))
    (job,) = await scheduler.planned()
    assert (job.kind, job.incident_id) == ("postmortem", first.id)
    scheduler = scheduler_at(sessions, settings, Clock(job.run_at))
    assert list((await scheduler.run_due()).values()) == ["done"]
    email = json.loads(next(a.payload for a in await staff_alerts(sessions) if a.channel == "email"))
    assert f"incident postmortem {first.id} --publish" in email["parts"][0]
    assert "Le paiement est indisponible" in email["parts"][0]  # the draft's timeline
    assert await scheduler.planned() == []
