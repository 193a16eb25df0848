"""The one write every publication shares: an update, its renditions and its Delivery rows.

`write_update` renders and lints first (a refusal writes nothing), then stages in the caller's
transaction the update, one rendition per channel × locale, one Delivery row per recipient, the
incident's new state and its components' derived status; `one_transaction` commits it all or
rolls it all back. Incidents, maintenance notices and postmortems are all published through it.

    async with one_transaction(session):
        published = await write_update(session, settings, composer, incident, draft, "update",
                                       is_first=False, force=False)
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from broadcaster.auth.audit import record
from broadcaster.compose.lint import Finding, has_errors
from broadcaster.compose.render import Composer
from broadcaster.config import Settings
from broadcaster.db import dialect_name
from broadcaster.delivery import outbox
from broadcaster.delivery.audience import (
    SUBSCRIBER_CHANNELS,
    Recipient,
    public_recipients,
    resolve_locale,
    subscriber_filter,
    subscriber_locales,
)
from broadcaster.message import MessageKind, RenderedMessage
from broadcaster.models import Component, Incident, IncidentUpdate, Rendition, Subscription, utcnow
from broadcaster.publishing.component_status import affected_elsewhere_sync, refresh_component_statuses_sync
from broadcaster.publishing.drafting import (
    Fallback,
    IncidentFacts,
    LintRefused,
    UpdateDraft,
    draft_messages,
    fallbacks,
    localized,
    render_update,
)

__all__ = [
    "NO_CHANGES",
    "Changes",
    "Published",
    "add_missing_components",
    "changes_between",
    "one_transaction",
    "promised_update_at",
    "write_update",
]


@dataclass(frozen=True, slots=True)
class Published:
    incident: Incident
    update: IncidentUpdate
    deliveries: dict[str, int]  # channel -> rows written
    findings: list[Finding]
    fallbacks: list[Fallback] = field(default_factory=list)  # subscribers who read the default locale


@dataclass(frozen=True, slots=True)
class Changes:
    """What a follow-up changed of its incident: the impact before (empty: unchanged), components."""

    previous_impact: str = ""
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()


NO_CHANGES = Changes()


def changes_between(previous: IncidentUpdate | None, update: IncidentUpdate) -> Changes:
    """What `update` changed of its incident, from the facts recorded with it and the one before
    (nothing for the first update, or for updates written before their facts were recorded)."""
    if previous is None or not (
        previous.impact and update.impact and previous.components and update.components
    ):
        return NO_CHANGES
    return Changes(
        previous_impact=previous.impact if previous.impact != update.impact else "",
        added=tuple(c for c in update.components if c not in previous.components),
        removed=tuple(c for c in previous.components if c not in update.components),
    )


@asynccontextmanager
async def one_transaction(session: AsyncSession) -> AsyncIterator[None]:
    """Commit what the block staged; any failure (a lint refusal included) rolls it all back."""
    try:
        yield
        await session.commit()
    except BaseException:
        await session.rollback()
        raise


def promised_update_at(settings: Settings, impact: str, now: datetime) -> datetime:
    """When the next update is due if the writer named no time: `[schedule] cadence_minutes` by impact."""
    cadence = settings.schedule.cadence_minutes
    minutes = cadence.get(impact, max(cadence.values(), default=60.0))
    return now + timedelta(minutes=minutes)


async def add_missing_components(session: AsyncSession, settings: Settings) -> None:
    """Give every component of the config a row (its status is kept across restarts); no commit."""
    existing = set((await session.exec(select(Component.name))).all())
    default = settings.brand.default_locale
    for name in settings.components:
        if name not in existing:
            session.add(Component(name=name, description=settings.component_label(name, default)))
    await session.flush()


def _with_incident_texts(settings: Settings, incident: Incident, draft: UpdateDraft) -> UpdateDraft:
    """An update that names no alternative keeps the incident's (in every locale it has)."""
    if draft.alternative or not incident.workaround:
        return draft
    default = settings.brand.default_locale
    workaround = dict(incident.workaround)
    if default not in workaround:
        return draft
    return replace(
        draft,
        alternative=workaround.pop(default),
        alternative_translations=workaround,
    )


async def write_update(
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
    changes: Changes = NO_CHANGES,
    audience: Sequence[str] | None = None,
    only_to: Collection[tuple[str, str]] | None = None,
) -> Published:
    """Stage one update of `incident` (already flushed, with its new impact and components).

    `audience`: the components whose subscribers hear it (default: the incident's; a follow-up
    that removed components also tells those components' subscribers). `only_to`: of that
    audience, only these (channel, target) pairs (a maintenance's change goes to those already
    told of it). Nothing is committed.
    """
    assert incident.id is not None
    now = now or utcnow()
    if kind == "update" and draft.next_update_at is None:
        draft = replace(draft, next_update_at=promised_update_at(settings, incident.impact, now))
    draft = _with_incident_texts(settings, incident, draft)
    connection = await session.connection()
    still_affected: list[str] = []
    if kind == "resolved":
        still_affected = await connection.run_sync(
            affected_elsewhere_sync, incident.id, list(incident.components)
        )
    facts = IncidentFacts(
        incident.id, incident.title, incident.impact, tuple(incident.components), is_first,
        titles=dict(incident.title_translations), previous_impact=changes.previous_impact,
        added=changes.added, removed=changes.removed, still_affected=tuple(still_affected),
    )  # fmt: skip
    rendered = render_update(settings, composer, facts, draft, kind, now)
    if has_errors(rendered.findings) and not force:
        raise LintRefused(rendered.findings)
    channels = list(rendered.renders)
    update = IncidentUpdate(
        incident_id=incident.id,
        kind=kind,
        status=draft.status,
        messages=draft_messages(settings, draft, may_be_empty=True),
        eta_at=draft.eta_at,
        next_update_at=draft.next_update_at,
        channels=channels,
        impact=incident.impact,
        components=list(incident.components),
        author=draft.author,
        created_at=now,
    )
    session.add(update)
    await session.flush()
    assert update.id is not None
    public = public_recipients(settings, channels)
    if only_to is not None:
        public = [r for r in public if (r.channel, r.target) in only_to]
    components = list(audience if audience is not None else incident.components)
    counts, readers = await _write_deliveries(
        session, settings, rendered.renders, update.id, public, components, only_to, now
    )
    incident.status = draft.status
    incident.next_update_at = draft.next_update_at
    if draft.alternative:
        incident.workaround = localized(
            settings, draft.alternative, draft.alternative_translations, "--alternative"
        )
    if draft.compensation:
        incident.compensation = draft.compensation
        incident.compensation_translations = dict(draft.compensation_translations)
    session.add(incident)
    await session.flush()
    await connection.run_sync(refresh_component_statuses_sync, now)
    record(
        session,
        _action(kind, is_first),
        f"incident:{incident.id}",
        _summary(draft, counts, rendered.findings),
    )
    return Published(
        incident=incident,
        update=update,
        deliveries=counts,
        findings=rendered.findings,
        fallbacks=fallbacks(rendered.untranslated, readers),
    )


def _action(kind: MessageKind, is_first: bool) -> str:
    if kind == "update":
        return "incident.open" if is_first else "incident.update"
    return {
        "resolved": "incident.resolve",
        "maintenance_notice": "maintenance.notice",
        "postmortem": "postmortem.publish",
    }.get(kind, f"incident.{kind}")


def _summary(draft: UpdateDraft, counts: Mapping[str, int], findings: Sequence[Finding]) -> str:
    """`investigating, 812 deliveries (email 800, telegram 12)`, and what a forced publication overrode."""
    per_channel = ", ".join(f"{channel} {n}" for channel, n in counts.items() if n)
    summary = f"{draft.status or draft.phase}, {sum(counts.values())} deliveries" + (
        f" ({per_channel})" if per_channel else ""
    )
    overridden = sorted({f.rule for f in findings if f.severity == "error"})
    if overridden:
        summary += f"; forced past {', '.join(overridden)}"
        if draft.force_reason:
            summary += f" because: {draft.force_reason}"
    return summary


async def _write_deliveries(
    session: AsyncSession,
    settings: Settings,
    renders: dict[str, dict[str, RenderedMessage]],
    update_id: int,
    public: Sequence[Recipient],
    components: Sequence[str],
    only_to: Collection[tuple[str, str]] | None,
    now: datetime,
) -> tuple[dict[str, int], dict[str, int]]:
    """One rendition per channel × locale, one Delivery row per recipient (a locale without its
    own rendition gets the default locale's); (rows per channel, subscriptions per locale).

    The subscribers' rows are written by the database itself, one `INSERT … SELECT` per channel:
    nothing per recipient is held here, however large the audience.
    """
    renditions = {
        (channel, locale): Rendition(
            update_id=update_id, channel=channel, locale=locale, payload=msg.to_json()
        )
        for channel, per_locale in renders.items()
        for locale, msg in per_locale.items()
    }
    session.add_all(renditions.values())
    await session.flush()
    default_locale = settings.brand.default_locale

    def rendition_for(channel: str, locale: str) -> tuple[int, str]:
        rendition = renditions.get((channel, locale)) or renditions[(channel, default_locale)]
        assert rendition.id is not None
        return rendition.id, rendition.locale

    rows = [
        outbox.new_delivery(
            kind=outbox.BROADCAST,
            channel=r.channel,
            target=r.target,
            locale=rendition_for(r.channel, r.locale)[1],
            now=now,
            update_id=update_id,
            rendition_id=rendition_for(r.channel, r.locale)[0],
        )
        for r in public
    ]
    await outbox.insert_deliveries(session, rows)
    counts: dict[str, int] = {}
    for r in public:
        counts[r.channel] = counts.get(r.channel, 0) + 1
    readers: dict[str, int] = {}
    dialect = dialect_name(session)
    for channel in [c for c in renders if c in SUBSCRIBER_CHANNELS]:
        for conditions in _audience_parts(dialect, channel, components, only_to):
            stored_locales = await subscriber_locales(session, conditions)
            if not stored_locales:
                continue
            chosen = {}
            for stored, n in stored_locales.items():
                locale = resolve_locale(stored, settings)
                readers[locale] = readers.get(locale, 0) + n
                chosen[stored] = rendition_for(channel, locale)
            written = await outbox.insert_audience(
                session,
                update_id=update_id,
                channel=channel,
                conditions=conditions,
                renditions=chosen,
                fallback=rendition_for(channel, default_locale),
                now=now,
            )
            if written:
                counts[channel] = counts.get(channel, 0) + written
    return counts, readers


#: Addresses per statement when only some subscribers are told: within every database's bind limit.
_ADDRESSES_PER_STATEMENT = 5000


def _audience_parts(
    dialect: str, channel: str, components: Sequence[str], only_to: Collection[tuple[str, str]] | None
) -> list[list[ColumnElement[bool]]]:
    """The conditions of `channel`'s subscribers to write, in parts that each fit one statement."""
    conditions = subscriber_filter(dialect, channel, components)
    if only_to is None:
        return [conditions]
    addresses = sorted({target for c, target in only_to if c == channel})
    return [
        [*conditions, col(Subscription.address).in_(addresses[i : i + _ADDRESSES_PER_STATEMENT])]
        for i in range(0, len(addresses), _ADDRESSES_PER_STATEMENT)
    ]
