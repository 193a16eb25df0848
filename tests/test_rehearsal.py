"""A rehearsal can be removed (issue #10, item 8): what `broadcaster incident delete` deletes, keeps
and refuses (its command line is in test_rehearsal_cli.py)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update as sql_update
from sqlmodel import col, func, select

from broadcaster.db import SessionFactory
from broadcaster.models import (
    CapturedMessage,
    Component,
    Conversation,
    Delivery,
    Incident,
    IncidentUpdate,
    Message,
    Rendition,
    ScheduledRun,
    utcnow,
)
from broadcaster.publishing.maintenance import post_notice, schedule_maintenance
from broadcaster.publishing.rehearsal import NotARehearsal, check_rehearsal, delete_rehearsal
from broadcaster.schedule.plan import plan
from tests.conftest import make_settings
from tests.e2e.helpers import deliver, draft, live_settings, open_, people, resolve, subscribe
from tests.peers.telegram import TelegramPeer
from tests.test_inbox_actions import customer_writes, inbound

OPENING = draft("investigating", "Le paiement échoue. Désolés, nous enquêtons.", "Payment fails. Sorry.")
RESOLVED = draft("resolved", "Tout fonctionne. Merci pour votre patience.", "All good. Thank you.")


async def _count(sessions: SessionFactory, model: type, *where: object) -> int:
    async with sessions() as session:
        return int((await session.exec(select(func.count()).select_from(model).where(*where))).one())  # type: ignore[arg-type]


async def _statuses(sessions: SessionFactory) -> dict[str, str]:
    async with sessions() as session:
        return {c.name: c.status for c in await session.exec(select(Component))}


async def test_a_resolved_rehearsal_goes_with_everything_of_it(
    database_url: str, sessions: SessionFactory
) -> None:
    settings = make_settings(database_url)  # every channel in capture mode
    await subscribe(sessions, settings, people(4))
    (cid,) = await customer_writes(sessions, inbound("42:1", "le paiement échoue ?", key="42"))
    opened = await open_(sessions, settings, OPENING, force=True)
    incident_id = opened.incident.id
    assert incident_id is not None
    async with sessions() as session:  # the customer follows the incident: answered at resolution
        await session.exec(
            sql_update(Conversation).where(col(Conversation.id) == cid).values(incident_id=incident_id)
        )  # type: ignore[call-overload]
        session.add(ScheduledRun(key=f"followup:{incident_id}:reminder:x", kind="reminder",
                                 incident_id=incident_id, outcome="done"))  # fmt: skip
        await session.commit()
    resolved = await resolve(sessions, settings, incident_id, RESOLVED)
    for published in (opened, resolved):
        await deliver(sessions, settings, published)
    other = await open_(sessions, settings, OPENING, force=True, title="Une autre")
    await deliver(sessions, settings, other)
    async with sessions() as session:
        assert [j.incident_id for j in await plan(session, settings)].count(incident_id) == 1  # postmortem

    async with sessions() as session:
        found = await check_rehearsal(session, settings, incident_id)
        deleted = await delete_rehearsal(session, settings, incident_id)
    assert found == deleted
    assert (deleted.kind, deleted.updates, deleted.deliveries, deleted.captured) == ("incident", 2, 16, 16)
    assert (deleted.scheduled_runs, deleted.conversations) == (1, 1)

    update_ids = [opened.update.id, resolved.update.id]
    assert await _count(sessions, Incident, col(Incident.id) == incident_id) == 0
    assert await _count(sessions, IncidentUpdate, col(IncidentUpdate.incident_id) == incident_id) == 0
    assert await _count(sessions, Rendition, col(Rendition.update_id).in_(update_ids)) == 0
    assert await _count(sessions, Delivery, col(Delivery.update_id).in_(update_ids)) == 0
    assert await _count(sessions, ScheduledRun, col(ScheduledRun.incident_id) == incident_id) == 0
    async with sessions() as session:
        captured = list(await session.exec(select(CapturedMessage)))
        conversation = await session.get(Conversation, cid)
        jobs = await plan(session, settings)
    # What is left: the other incident's broadcasts, and the customer's thread with our answer.
    assert {c.idempotency_key.split(":")[0] for c in captured} <= {str(other.update.id), "reply"}
    assert len([c for c in captured if c.idempotency_key.startswith(f"{other.update.id}:")]) == 8
    assert conversation is not None and conversation.incident_id is None
    assert await _count(sessions, Message, col(Message.conversation_id) == cid) == 2
    assert {j.incident_id for j in jobs} == {other.incident.id}


async def test_an_open_rehearsal_gives_its_components_back(
    database_url: str, sessions: SessionFactory
) -> None:
    settings = make_settings(database_url)
    checkout = await open_(sessions, settings, OPENING, force=True, components=["checkout", "payment"])
    await open_(sessions, settings, OPENING, force=True, components=["payment"], title="Paiement")
    assert (await _statuses(sessions))["checkout"] == "partial_outage"
    assert checkout.incident.id is not None
    async with sessions() as session:
        await delete_rehearsal(session, settings, checkout.incident.id)
    statuses = await _statuses(sessions)
    assert statuses["checkout"] == "operational"  # nothing else open affects it
    assert statuses["payment"] == "partial_outage"  # the other incident still does


async def test_a_maintenance_rehearsal_is_deleted_too(database_url: str, sessions: SessionFactory) -> None:
    settings = make_settings(database_url)
    now = utcnow()
    async with sessions() as session:
        maintenance = await schedule_maintenance(
            session, settings, title="Mise à jour", starts_at=now + timedelta(days=3),
            ends_at=now + timedelta(days=3, hours=2), components=["checkout"],
            message={"fr": "Nous mettons à jour le paiement."}, author="cm", now=now,
        )  # fmt: skip
        assert maintenance.id is not None
        notice = await post_notice(
            session, settings, maintenance.id, phase="notice", channels=["email"], now=now
        )
    assert notice is not None
    await deliver(sessions, settings, notice)
    async with sessions() as session:
        deleted = await delete_rehearsal(session, settings, maintenance.id)
    assert (deleted.kind, deleted.updates) == ("maintenance", 2)
    async with sessions() as session:
        assert await plan(session, settings) == []


async def test_what_went_out_for_real_refuses_the_deletion(
    database_url: str, sessions: SessionFactory
) -> None:
    with TelegramPeer() as telegram:
        settings = live_settings(database_url, smtp=None, telegram=telegram)  # Telegram live
        await subscribe(sessions, settings, people(4))
        sent = await open_(sessions, settings, OPENING, force=True)
        await deliver(sessions, settings, sent)
        queued = await open_(sessions, settings, OPENING, force=True, title="Pas encore envoyé")
    assert sent.incident.id is not None and queued.incident.id is not None
    async with sessions() as session:
        with pytest.raises(NotARehearsal) as refused:
            await delete_rehearsal(session, settings, sent.incident.id)
        assert str(refused.value) == (
            f"incident #{sent.incident.id} is not a rehearsal: 3 message(s) went out for real "
            "(telegram: 3). Only what reached capture-mode channels alone can be deleted; resolve it instead"
        )
        with pytest.raises(NotARehearsal, match=r"3 wait or failed on live channels \(telegram: 3\)"):
            await check_rehearsal(session, settings, queued.incident.id)
    assert await _count(sessions, Incident) == 2
    assert await _count(sessions, CapturedMessage, col(CapturedMessage.channel) == "email") == 2  # kept
