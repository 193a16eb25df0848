"""Open, update and resolve incidents: validate, render, lint, then write everything in one transaction.

Nothing is written when the input is bad or the linter finds errors (unless forced): the update,
its renditions (one per channel × locale) and every Delivery row are committed together.
A draft (not public, e.g. made by the spike detector) is published as an incident's first
update, or discarded.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy import delete as sql_delete
from sqlalchemy import update as sql_update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from broadcaster import outbox
from broadcaster.audience import public_recipients, subscriber_recipients
from broadcaster.compose import Composer
from broadcaster.config import Settings
from broadcaster.drafting import (
    IncidentFacts,
    LintRefused,
    PublishError,
    UpdateDraft,
    check_components,
    draft_messages,
    render_update,
)
from broadcaster.lint import Finding, has_errors
from broadcaster.message import MessageKind
from broadcaster.models import Component, Conversation, Incident, IncidentUpdate, Message, Rendition, utcnow
from broadcaster.resolution_answers import answer_linked_conversations
from broadcaster.spikes import SPIKE_INTENTS

__all__ = [
    "LintRefused",
    "PublishError",
    "Published",
    "UpdateDraft",
    "discard_draft",
    "open_incident",
    "post_update",
    "publish_draft",
    "resolve_incident",
    "sync_components",
]

INCIDENT_STATUSES = ("investigating", "identified", "monitoring")
IMPACTS = ("none", "minor", "major", "critical")
COMPONENT_STATUS_BY_IMPACT = {
    "none": "operational",
    "minor": "degraded",
    "major": "partial_outage",
    "critical": "major_outage",
}


@dataclass(frozen=True, slots=True)
class Published:
    incident: Incident
    update: IncidentUpdate
    deliveries: dict[str, int]  # channel -> rows written
    findings: list[Finding]


@asynccontextmanager
async def _all_or_nothing(session: AsyncSession) -> AsyncIterator[None]:
    """Any failure (a lint refusal included) rolls the whole publication back."""
    try:
        yield
    except BaseException:
        await session.rollback()
        raise


async def _write_update(
    session: AsyncSession,
    settings: Settings,
    composer: Composer,
    incident: Incident,
    draft: UpdateDraft,
    kind: MessageKind,
    *,
    is_first: bool,
    force: bool,
    now: datetime | None = None,
    component_status: str | None = None,
    only_to: Collection[tuple[str, str]] | None = None,
) -> Published:
    """`component_status`: what the components become (default: by kind and impact; a maintenance
    notice leaves them alone unless told). `only_to`: deliver to these (channel, target) pairs only,
    of the usual audience (a maintenance's change goes to those already told of it)."""
    assert incident.id is not None
    now = now or utcnow()
    if kind == "update" and draft.next_update_at is None:
        draft = replace(draft, next_update_at=promised_update_at(settings, incident.impact, now))
    facts = IncidentFacts(incident.id, incident.title, incident.impact, tuple(incident.components), is_first)
    rendered = render_update(settings, composer, facts, draft, kind, now)
    if has_errors(rendered.findings) and not force:
        raise LintRefused(rendered.findings)
    channels = list(rendered.renders)
    update = IncidentUpdate(
        incident_id=incident.id,
        kind=kind,
        status=draft.status,
        messages=draft_messages(settings, draft),
        eta_at=draft.eta_at,
        next_update_at=draft.next_update_at,
        channels=channels,
        author=draft.author,
        created_at=now,
    )
    session.add(update)
    await session.flush()
    assert update.id is not None
    renditions = {
        (channel, locale): Rendition(
            update_id=update.id, channel=channel, locale=locale, payload=msg.to_json()
        )
        for channel, per_locale in rendered.renders.items()
        for locale, msg in per_locale.items()
    }
    session.add_all(renditions.values())
    await session.flush()
    recipients = public_recipients(settings, channels) + await subscriber_recipients(
        session, settings, channels, incident.components
    )
    if only_to is not None:
        recipients = [r for r in recipients if (r.channel, r.target) in only_to]
    default_locale = settings.brand.default_locale

    def rendition_for(channel: str, locale: str) -> Rendition:
        return renditions.get((channel, locale)) or renditions[(channel, default_locale)]

    rows = [
        outbox.new_delivery(
            channel=r.channel,
            target=r.target,
            locale=rendition_for(r.channel, r.locale).locale,
            now=now,
            update_id=update.id,
            rendition_id=rendition_for(r.channel, r.locale).id,
            subscription_id=r.subscription_id,
        )
        for r in recipients
    ]
    await outbox.insert_deliveries(session, rows)
    incident.status = draft.status
    incident.next_update_at = draft.next_update_at
    if draft.alternative:
        incident.workaround = {settings.brand.default_locale: draft.alternative}
    if draft.compensation:
        incident.compensation = draft.compensation
    if component_status is None and kind not in ("postmortem", "maintenance_notice"):
        # a report after the fact leaves today's component status alone
        component_status = (
            "operational" if kind == "resolved" else COMPONENT_STATUS_BY_IMPACT[incident.impact]
        )
    if component_status is not None:
        await (await session.connection()).execute(
            sql_update(Component)
            .where(Component.name.in_(incident.components))  # type: ignore[attr-defined]
            .values(status=component_status, updated_at=now)
        )
    session.add(incident)
    await session.commit()
    counts: dict[str, int] = {}
    for r in recipients:
        counts[r.channel] = counts.get(r.channel, 0) + 1
    return Published(incident=incident, update=update, deliveries=counts, findings=rendered.findings)


async def sync_components(session: AsyncSession, settings: Settings) -> None:
    """Make sure every component of the config has a row (status kept across restarts)."""
    existing = set((await session.exec(select(Component.name))).all())
    for name in settings.components:
        if name not in existing:
            session.add(
                Component(
                    name=name, description=settings.component_label(name, settings.brand.default_locale)
                )
            )
    await session.commit()


def promised_update_at(settings: Settings, impact: str, now: datetime) -> datetime:
    """When the next update is due if the writer named no time: `[schedule] cadence_minutes` by impact."""
    cadence = settings.schedule.cadence_minutes
    minutes = cadence.get(impact, max(cadence.values(), default=60.0))
    return now + timedelta(minutes=minutes)


def _check_opening(
    settings: Settings, *, title: str, impact: str, components: Sequence[str], draft: UpdateDraft
) -> None:
    """What an incident's first update needs: a title, a known impact, status and components."""
    if not title.strip():
        raise PublishError("the incident needs a title (--title)")
    if impact not in IMPACTS:
        raise PublishError(f"unknown impact {impact!r} (choose from {', '.join(IMPACTS)})")
    if draft.status not in INCIDENT_STATUSES:
        raise PublishError(f"unknown status {draft.status!r} (choose from {', '.join(INCIDENT_STATUSES)})")
    check_components(settings, components)


async def open_incident(
    session: AsyncSession,
    settings: Settings,
    composer: Composer,
    *,
    title: str,
    impact: str,
    components: Sequence[str],
    draft: UpdateDraft,
    force: bool = False,
    answer_conversations: bool = True,
    holding_messages: bool = True,
) -> Published:
    """Create an incident and publish its first update to every enabled channel.

    `answer_conversations=False`: at resolution, customers who wrote about it get no personal answer.
    `holding_messages=False`: a missed next-update promise only reminds the staff, nothing is posted.
    """
    _check_opening(settings, title=title, impact=impact, components=components, draft=draft)
    await sync_components(session, settings)
    incident = Incident(
        title=title.strip(),
        status=draft.status,
        impact=impact,
        components=list(components),
        answer_conversations=answer_conversations,
        holding_messages=holding_messages,
    )
    async with _all_or_nothing(session):
        session.add(incident)
        await session.flush()
        return await _write_update(
            session, settings, composer, incident, draft, "update", is_first=True, force=force
        )


async def _load_draft(session: AsyncSession, incident_id: int) -> Incident:
    incident = await session.get(Incident, incident_id)
    if incident is None:
        raise PublishError(f"no incident #{incident_id}")
    if incident.status != "draft":
        raise PublishError(f"incident #{incident_id} is not a draft (it is {incident.status})")
    return incident


async def publish_draft(
    session: AsyncSession,
    settings: Settings,
    composer: Composer,
    incident_id: int,
    *,
    title: str | None,
    impact: str | None,
    components: Sequence[str] | None,
    draft: UpdateDraft,
    force: bool = False,
) -> Published:
    """Make a draft (e.g. the spike detector's) a public incident with its first update.

    `None` keeps the draft's title, impact or components. The draft is taken with a conditional
    UPDATE, so two people publishing the same draft at once publish it once.
    """
    incident = await _load_draft(session, incident_id)
    title = incident.title if title is None else title
    impact = incident.impact if impact is None else impact
    components = list(incident.components if components is None else components)
    _check_opening(settings, title=title, impact=impact, components=components, draft=draft)
    await sync_components(session, settings)
    async with _all_or_nothing(session):
        await _take_draft(session, incident_id, draft.status)
        await _link_reports(session, settings, incident)
        incident.title, incident.impact, incident.components = title.strip(), impact, components
        incident.created_at = utcnow()  # the public story starts with its first update
        return await _write_update(
            session, settings, composer, incident, draft, "update", is_first=True, force=force
        )


async def _link_reports(session: AsyncSession, settings: Settings, incident: Incident) -> None:
    """The customers whose reports made the draft now follow the incident (answered at resolution)."""
    since = incident.created_at - timedelta(minutes=settings.inbox.spike_window_minutes)
    reporters = select(col(Message.conversation_id)).where(
        Message.direction == "in", col(Message.intent).in_(SPIKE_INTENTS), col(Message.created_at) >= since
    )
    await (await session.connection()).execute(
        sql_update(Conversation)
        .where(
            col(Conversation.incident_id).is_(None),
            col(Conversation.status) != "closed",
            col(Conversation.id).in_(reporters),
        )
        .values(incident_id=incident.id)
    )


async def _take_draft(session: AsyncSession, incident_id: int, status: str) -> None:
    """Leave the draft state, unless someone else published or discarded the draft meanwhile."""
    taken = await (await session.connection()).execute(
        sql_update(Incident)
        .where(col(Incident.id) == incident_id, col(Incident.status) == "draft")
        .values(status=status)
    )
    if taken.rowcount != 1:
        raise _no_longer_a_draft(incident_id)


def _no_longer_a_draft(incident_id: int) -> PublishError:
    return PublishError(
        f"incident #{incident_id} is no longer a draft: someone else published or discarded it"
    )


async def discard_draft(session: AsyncSession, incident_id: int) -> Incident:
    """Delete a draft nobody wants to publish; return what it was."""
    incident = await _load_draft(session, incident_id)
    async with _all_or_nothing(session):
        deleted = await (await session.connection()).execute(
            sql_delete(Incident).where(col(Incident.id) == incident_id, col(Incident.status) == "draft")
        )
        if deleted.rowcount != 1:
            raise _no_longer_a_draft(incident_id)
        await session.commit()
    return incident


async def _load_open(session: AsyncSession, incident_id: int) -> Incident:
    incident = await session.get(Incident, incident_id)
    if incident is None:
        raise PublishError(f"no incident #{incident_id}")
    if incident.status == "resolved":
        raise PublishError(f"incident #{incident_id} is already resolved")
    if incident.status == "draft":
        raise PublishError(
            f"incident #{incident_id} is a draft: publish it first (broadcaster incident publish)"
        )
    return incident


async def post_update(
    session: AsyncSession,
    settings: Settings,
    composer: Composer,
    incident_id: int,
    draft: UpdateDraft,
    *,
    force: bool = False,
) -> Published:
    """Publish a follow-up (investigating → identified → monitoring)."""
    if draft.status not in INCIDENT_STATUSES:
        raise PublishError(f"unknown status {draft.status!r} (choose from {', '.join(INCIDENT_STATUSES)})")
    incident = await _load_open(session, incident_id)
    async with _all_or_nothing(session):
        return await _write_update(
            session, settings, composer, incident, draft, "update", is_first=False, force=force
        )


async def resolve_incident(
    session: AsyncSession,
    settings: Settings,
    composer: Composer,
    incident_id: int,
    draft: UpdateDraft,
    *,
    force: bool = False,
    answer_conversations: bool = True,
) -> Published:
    """Publish the resolution (thanks, compensation) and mark components operational.

    Unless the incident or this call opts out, every open conversation about the incident gets
    a personal answer in its own thread, in the same transaction.
    """
    incident = await _load_open(session, incident_id)
    resolved = replace(draft, status="resolved", eta_at=None, next_update_at=None)
    async with _all_or_nothing(session):
        incident.resolved_at = utcnow()
        if draft.compensation:
            incident.compensation = draft.compensation
        if answer_conversations and incident.answer_conversations:
            messages = draft_messages(settings, resolved)
            await answer_linked_conversations(session, settings, incident, messages, incident.resolved_at)
        return await _write_update(
            session, settings, composer, incident, resolved, "resolved", is_first=False, force=force
        )
