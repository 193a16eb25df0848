"""Incidents as they unfold (issue #10, scenarios 3 and 4).

- A component's status is the worst of every open incident and running maintenance on it: the
  status page, `/api/v1/status`, the resolution's messages and the bot all agree.
- A follow-up may change the status, the impact or the components (each optional, at least one
  thing new); its messages say what changed, and the subscribers of a component it no longer
  affects hear it too.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import col, select

from broadcaster.compose.render import Composer
from broadcaster.db import SessionFactory
from broadcaster.delivery.subscribers import NewSubscriber
from broadcaster.inbox.bot import StatusBot
from broadcaster.inbox.filing import file_pending
from broadcaster.inbox.inbound import store_inbound
from broadcaster.message import RenderedMessage
from broadcaster.models import Component, Delivery, IncidentUpdate, Message, Rendition, utcnow
from broadcaster.publishing.drafting import PublishError, UpdateDraft
from broadcaster.publishing.incidents import Published, post_update
from broadcaster.publishing.maintenance import schedule_maintenance, start_maintenance
from broadcaster.web import create_app
from channels.base import InboundMessage
from tests.conftest import make_settings
from tests.e2e.helpers import draft, follow_up, open_, resolve, subscribe
from tests.served import served

SORRY = draft("investigating", "Le site est lent, nous sommes désolés.", "The site is slow, we are sorry.")
FIXED = draft("resolved", "Le site fonctionne de nouveau. Merci !", "The site works again. Thank you!")


async def statuses(sessions: SessionFactory) -> dict[str, str]:
    async with sessions() as session:
        return {c.name: c.status for c in await session.exec(select(Component))}


async def rendition(sessions: SessionFactory, update_id: int, channel: str, locale: str) -> RenderedMessage:
    async with sessions() as session:
        row = (
            await session.exec(
                select(Rendition).where(
                    Rendition.update_id == update_id, Rendition.channel == channel, Rendition.locale == locale
                )
            )
        ).one()
    return RenderedMessage.from_json(row.payload)


async def test_resolving_a_minor_incident_leaves_a_critical_one_showing(
    database_url: str, sessions: SessionFactory
) -> None:
    settings = make_settings(database_url)
    minor = await open_(sessions, settings, SORRY, title="Lenteurs", impact="minor", components=["website"])
    customer = InboundMessage("telegram", "41:1", "41", "lea", "le site rame ?", utcnow())
    await store_inbound(sessions, [customer])
    await file_pending(sessions, bot=StatusBot(settings))  # the bot answers about the minor incident
    critical = await open_(
        sessions, settings, SORRY, title="Site indisponible", impact="critical", components=["website"]
    )
    assert (await statuses(sessions))["website"] == "major_outage"
    assert minor.incident.id is not None and critical.incident.id is not None
    resolved = await resolve(sessions, settings, minor.incident.id, FIXED)
    assert (await statuses(sessions))["website"] == "major_outage"  # the critical one is still open

    app = create_app(settings, dispatch=False)
    async with served(app) as client:
        api = (await client.get("/api/v1/status")).json()
        page = (await client.get("/status", headers={"Accept-Language": "en"})).text
    assert {c["name"]: c["status"] for c in api["components"]}["website"] == "major_outage"
    assert "Outage" in page and [i["id"] for i in api["incidents"]] == [critical.incident.id]

    assert resolved.update.id is not None
    for channel in ("email", "telegram", "twitter", "facebook", "push", "blog"):
        for locale in ("fr", "en"):
            message = await rendition(sessions, resolved.update.id, channel, locale)
            text = message.title + "\n" + message.text
            assert "de nouveau normalement" not in text and "working normally again" not in text, channel
            assert "Tout fonctionne" not in text and "Everything is working" not in text, channel

    async with sessions() as session:
        answers = list(await session.exec(select(Message.text).where(Message.direction == "out")))
    assert "« Lenteurs » : il est résolu. Site web reste perturbé par un autre incident" in answers[-1]

    await resolve(sessions, settings, critical.incident.id, FIXED)
    assert (await statuses(sessions))["website"] == "operational"


async def test_a_running_maintenance_and_an_incident_on_one_component(
    database_url: str, sessions: SessionFactory
) -> None:
    settings = make_settings(database_url)
    now = datetime.now(UTC)
    async with sessions() as session:
        planned = await schedule_maintenance(
            session, settings, title="Mise à jour", starts_at=now + timedelta(minutes=1),
            ends_at=now + timedelta(hours=2), components=["checkout"], message={"fr": "Nous mettons à jour."},
            author="test", now=now,
        )  # fmt: skip
    assert planned.id is not None
    async with sessions() as session:
        await start_maintenance(session, settings, planned.id, now + timedelta(minutes=1))
    assert (await statuses(sessions))["checkout"] == "maintenance"
    opened = await open_(sessions, settings, SORRY, impact="minor", components=["checkout"])
    assert (await statuses(sessions))["checkout"] == "degraded"  # worse than a maintenance
    assert opened.incident.id is not None
    await resolve(sessions, settings, opened.incident.id, FIXED)
    assert (await statuses(sessions))["checkout"] == "maintenance"  # the window still runs


async def test_an_update_can_change_only_the_impact_and_the_components(
    database_url: str, sessions: SessionFactory
) -> None:
    settings = make_settings(database_url)
    await subscribe(
        sessions,
        settings,
        [
            NewSubscriber(email="site@example.com", locale="en", components=["website"], line=2),
            NewSubscriber(email="pay@example.com", locale="fr", components=["payment"], line=3),
        ],
    )
    opened = await open_(sessions, settings, SORRY, impact="minor", components=["website"])
    assert opened.incident.id is not None

    async def update(**changes: object) -> Published:
        async with sessions() as session:
            return await post_update(
                session, settings, Composer(default_locale="fr"), opened.incident.id or 0,
                UpdateDraft(status=str(changes.pop("status", "")), message=str(changes.pop("message", ""))),
                **changes,  # type: ignore[arg-type]
            )  # fmt: skip

    with pytest.raises(PublishError, match="nothing new"):
        await update()
    with pytest.raises(PublishError, match="nothing new"):
        await update(impact="minor", components=["website"])  # the same as now
    grown = await update(impact="critical", components=["website", "payment"])
    assert grown.incident.impact == "critical" and grown.incident.components == ["website", "payment"]
    assert (await statuses(sessions))["payment"] == "major_outage"
    assert grown.update.id is not None
    fr = await rendition(sessions, grown.update.id, "telegram", "fr")
    en = await rendition(sessions, grown.update.id, "email", "en")
    assert "L'incident touche désormais aussi : Paiement" in fr.text and "service interrompu" in fr.text
    assert "Now also affects: Payment" in en.text and "was: minor disruption" in en.text
    blog = await rendition(sessions, grown.update.id, "blog", "en")
    assert "<p>Now also affects: Payment." in blog.html  # a paragraph of its own, not glued to the status
    async with sessions() as session:
        told = list(await session.exec(select(Delivery.target).where(Delivery.update_id == grown.update.id)))
        recorded = await session.get(IncidentUpdate, grown.update.id)
    assert {"site@example.com", "pay@example.com"} <= set(told)
    assert (
        recorded is not None
        and recorded.impact == "critical"
        and recorded.components == ["website", "payment"]
    )

    shrunk = await update(status="identified", components=["payment"])
    assert shrunk.update.id is not None
    en = await rendition(sessions, shrunk.update.id, "email", "en")
    assert "No longer affects: Website" in en.text
    async with sessions() as session:
        told = list(await session.exec(select(Delivery.target).where(Delivery.update_id == shrunk.update.id)))
    assert "site@example.com" in told  # the website's subscribers learn it is no longer affected
    assert (await statuses(sessions))["website"] == "operational"

    only_status = await update(status="monitoring")
    assert only_status.update.status == "monitoring" and only_status.update.messages == {}


async def test_updates_without_a_new_status_keep_the_current_one(
    database_url: str, sessions: SessionFactory
) -> None:
    settings = make_settings(database_url)
    opened = await open_(sessions, settings, SORRY)
    assert opened.incident.id is not None
    kept = await follow_up(
        sessions, settings, opened.incident.id, UpdateDraft(status="", message="Toujours lent.")
    )
    assert kept.update.status == "investigating"
    async with sessions() as session:
        updates = list(await session.exec(select(IncidentUpdate).order_by(col(IncidentUpdate.id))))
    assert [u.status for u in updates] == ["investigating", "investigating"]
