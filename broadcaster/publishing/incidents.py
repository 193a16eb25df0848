"""Open, update and resolve incidents: validate, render, lint, then write everything in one transaction.

Nothing is written when the input is bad or the linter finds errors (unless forced): the update,
its renditions (one per channel × locale), every Delivery row, the components' status and the
answers to customers who wrote about the incident are committed together (`update_writer`).
A draft (not public, e.g. made by the spike detector) is published as an incident's first
update, or discarded.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta

from sqlalchemy import delete as sql_delete
from sqlalchemy import update as sql_update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from broadcaster.auth.audit import record
from broadcaster.compose.render import Composer
from broadcaster.config import Settings
from broadcaster.errors import NotFound
from broadcaster.inbox.resolution_answers import answer_linked_conversations
from broadcaster.inbox.spikes import SPIKE_INTENTS
from broadcaster.models import Conversation, Incident, Message, MonitorAlert, OpenRequest, utcnow
from broadcaster.publishing.drafting import (
    LintRefused,
    PublishError,
    UpdateDraft,
    check_components,
    draft_messages,
    localized_titles,
)
from broadcaster.publishing.update_writer import (
    Changes,
    Published,
    add_missing_components,
    one_transaction,
    promised_update_at,
    write_update,
)

__all__ = [
    "IMPACTS",
    "INCIDENT_STATUSES",
    "LintRefused",
    "OpenKey",
    "PublishError",
    "UnknownIncident",
    "Published",
    "UpdateDraft",
    "discard_draft",
    "open_incident",
    "opened_with",
    "post_update",
    "promised_update_at",
    "publish_draft",
    "resolve_incident",
    "sync_components",
]

INCIDENT_STATUSES = ("investigating", "identified", "monitoring")
IMPACTS = ("none", "minor", "major", "critical")


async def sync_components(session: AsyncSession, settings: Settings) -> None:
    """Make sure every component of the config has a row (status kept across restarts)."""
    await add_missing_components(session, settings)
    await session.commit()


def _check_status(status: str) -> None:
    if status not in INCIDENT_STATUSES:
        raise PublishError(f"unknown status {status!r} (choose from {', '.join(INCIDENT_STATUSES)})")


def _check_impact(impact: str) -> None:
    if impact not in IMPACTS:
        raise PublishError(f"unknown impact {impact!r} (choose from {', '.join(IMPACTS)})")


def _check_opening(
    settings: Settings, *, title: str, impact: str, components: Sequence[str], draft: UpdateDraft
) -> None:
    """What an incident's first update needs: a title, a known impact, status and components."""
    if not title.strip():
        raise PublishError("the incident needs a title (--title)")
    _check_impact(impact)
    _check_status(draft.status)
    check_components(settings, components)


def _title_translations(settings: Settings, title: str, translations: Mapping[str, str]) -> dict[str, str]:
    titles = localized_titles(settings, title, translations)
    titles.pop(settings.brand.default_locale, None)
    return titles


async def open_incident(
    session: AsyncSession,
    settings: Settings,
    composer: Composer,
    *,
    title: str,
    impact: str,
    components: Sequence[str],
    draft: UpdateDraft,
    title_translations: Mapping[str, str] | None = None,
    force: bool = False,
    answer_conversations: bool = True,
    holding_messages: bool = True,
    open_key: OpenKey | None = None,
) -> Published:
    """Create an incident and publish its first update to every enabled channel.

    `open_key`: the caller's idempotency key, written with the incident — a second opening with the
    same key fails on its unique constraint and writes nothing (`opened_with` finds the first).

    `title_translations`: the title in other locales. `answer_conversations=False`: customers who
    wrote about it get no personal answer. `holding_messages=False`: a missed next-update promise
    only reminds the staff, nothing is posted.
    """
    _check_opening(settings, title=title, impact=impact, components=components, draft=draft)
    incident = Incident(
        title=title.strip(),
        title_translations=_title_translations(settings, title, title_translations or {}),
        status=draft.status,
        impact=impact,
        components=list(dict.fromkeys(components)),
        answer_conversations=answer_conversations,
        holding_messages=holding_messages,
    )
    async with one_transaction(session):
        await add_missing_components(session, settings)
        session.add(incident)
        await session.flush()
        assert incident.id is not None
        if open_key is not None:
            session.add(OpenRequest(owner=open_key.owner, key=open_key.key,
                                    fingerprint=open_key.fingerprint, incident_id=incident.id))  # fmt: skip
        return await write_update(
            session, settings, composer, incident, draft, "update", is_first=True, force=force
        )


@dataclass(frozen=True, slots=True)
class OpenKey:
    """An idempotency key: who sent it, the key, and a fingerprint of what they asked for."""

    owner: str
    key: str
    fingerprint: str


async def opened_with(session: AsyncSession, owner: str, key: str) -> OpenRequest | None:
    """The earlier opening with this caller's key, if any."""
    statement = select(OpenRequest).where(OpenRequest.owner == owner, OpenRequest.key == key)
    return (await session.exec(statement)).first()


class UnknownIncident(PublishError, NotFound):
    """No incident has this number."""


async def _load_draft(session: AsyncSession, incident_id: int) -> Incident:
    incident = await session.get(Incident, incident_id)
    if incident is None or incident.kind != "incident":
        raise UnknownIncident(f"no incident #{incident_id}")
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
    title_translations: Mapping[str, str] | None = None,
    force: bool = False,
) -> Published:
    """Make a draft (e.g. the spike detector's) a public incident with its first update.

    `None` keeps the draft's title, impact or components. The customers whose reports made the
    draft now follow the incident: each is answered at once with its first update (and again at
    resolution). The draft is taken with a conditional UPDATE, so two people publishing the same
    draft at once publish it once.
    """
    incident = await _load_draft(session, incident_id)
    title = incident.title if title is None else title
    impact = incident.impact if impact is None else impact
    components = list(dict.fromkeys(incident.components if components is None else components))
    _check_opening(settings, title=title, impact=impact, components=components, draft=draft)
    titles = _title_translations(settings, title, title_translations or {})
    async with one_transaction(session):
        await add_missing_components(session, settings)
        await _take_draft(session, incident_id, draft.status)
        await _link_reports(session, settings, incident)
        incident.title, incident.impact, incident.components = title.strip(), impact, components
        incident.title_translations = titles
        incident.created_at = utcnow()  # the public story starts with its first update
        published = await write_update(
            session, settings, composer, incident, draft, "update", is_first=True, force=force
        )
        if incident.answer_conversations:
            await answer_linked_conversations(
                session, settings, incident, published.update, "published", published.update.created_at
            )
        return published


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
    """Delete a draft nobody wants to publish; return what it was. Conversations linked to it
    by the status bot are unlinked."""
    incident = await _load_draft(session, incident_id)
    async with one_transaction(session):
        connection = await session.connection()
        await connection.execute(
            sql_update(Conversation)
            .where(col(Conversation.incident_id) == incident_id)
            .values(incident_id=None)
        )
        await connection.execute(  # a monitor's alert that made it: its next firing drafts anew
            sql_update(MonitorAlert)
            .where(col(MonitorAlert.incident_id) == incident_id)
            .values(incident_id=None)
        )
        deleted = await connection.execute(
            sql_delete(Incident).where(col(Incident.id) == incident_id, col(Incident.status) == "draft")
        )
        if deleted.rowcount != 1:
            raise _no_longer_a_draft(incident_id)
        record(session, "incident.discard", f"incident:{incident_id}", f"draft {incident.title!r} discarded")
    return incident


async def _load_open(session: AsyncSession, incident_id: int) -> Incident:
    incident = await session.get(Incident, incident_id)
    if incident is None or incident.kind != "incident":
        raise UnknownIncident(f"no incident #{incident_id}")
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
    impact: str | None = None,
    components: Sequence[str] | None = None,
    force: bool = False,
) -> Published:
    """Publish a follow-up: any of a message, a new status (empty: unchanged), a new impact, a new
    set of components, an ETA or a next-update time — at least one thing new.

    Outages spread and shrink: the messages say what changed ("now also affects: Payment"), and
    the subscribers of a component it no longer affects hear that too.
    """
    incident = await _load_open(session, incident_id)
    status = draft.status or incident.status
    _check_status(status)
    new_impact = impact or incident.impact
    _check_impact(new_impact)
    new_components = list(dict.fromkeys(components)) if components is not None else incident.components
    check_components(settings, new_components)
    before = list(incident.components)
    changes = Changes(
        previous_impact=incident.impact if new_impact != incident.impact else "",
        added=tuple(c for c in new_components if c not in before),
        removed=tuple(c for c in before if c not in new_components),
    )
    has_message = bool(draft_messages(settings, draft, may_be_empty=True))
    if not (
        has_message
        or status != incident.status
        or changes != Changes()
        or draft.eta_at
        or draft.next_update_at
        or draft.alternative
    ):
        raise PublishError(
            f"nothing new for incident #{incident_id}: give a --message, or change --status, --impact or "
            "--component, or give an --eta or a --next-update"
        )
    audience = list(dict.fromkeys(before + new_components))  # who heard of it, and who now should
    async with one_transaction(session):
        incident.impact, incident.components = new_impact, new_components
        return await write_update(
            session, settings, composer, incident, replace(draft, status=status), "update",
            is_first=False, force=force, changes=changes, audience=audience,
        )  # fmt: skip


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
    """Publish the resolution (thanks, compensation); components are back unless something else
    open still affects them.

    Unless the incident or this call opts out, every customer who wrote about the incident gets
    a personal answer in their own thread, in the same transaction (`inbox.resolution_answers`).
    """
    incident = await _load_open(session, incident_id)
    resolved = replace(draft, status="resolved", eta_at=None, next_update_at=None)
    async with one_transaction(session):
        incident.resolved_at = utcnow()
        published = await write_update(
            session, settings, composer, incident, resolved, "resolved", is_first=False, force=force,
            now=incident.resolved_at,
        )  # fmt: skip
        if answer_conversations and incident.answer_conversations:
            await answer_linked_conversations(
                session, settings, incident, published.update, "resolved", incident.resolved_at
            )
        return published
