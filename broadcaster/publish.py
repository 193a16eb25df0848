"""Open, update and resolve incidents: validate, render, lint, then write everything in one transaction.

Nothing is written when the input is bad or the linter finds errors (unless forced): the update,
its renditions (one per channel × locale) and every Delivery row are committed together.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import update as sql_update
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from broadcaster import outbox
from broadcaster.audience import public_recipients, subscriber_recipients
from broadcaster.compose import Composer
from broadcaster.config import Settings
from broadcaster.lint import Draft, Finding, has_errors, lint
from broadcaster.message import Brand, MessageContext, MessageKind, RenderedMessage
from broadcaster.models import Component, Incident, IncidentUpdate, Rendition, utcnow

INCIDENT_STATUSES = ("investigating", "identified", "monitoring")
IMPACTS = ("none", "minor", "major", "critical")
COMPONENT_STATUS_BY_IMPACT = {
    "none": "operational",
    "minor": "degraded",
    "major": "partial_outage",
    "critical": "major_outage",
}


class PublishError(Exception):
    """Bad input (unknown component, empty message, wrong status…): nothing was written."""


class LintRefused(PublishError):
    """The crisis linter found errors; publish with `force=True` to override."""

    def __init__(self, findings: Sequence[Finding]) -> None:
        errors = [f for f in findings if f.severity == "error"]
        super().__init__(f"the message has {len(errors)} lint error(s); fix them or use --force")
        self.findings = list(findings)


@dataclass(frozen=True, slots=True)
class UpdateDraft:
    """What the community manager wrote for one update."""

    status: str
    message: str
    translations: dict[str, str] = field(default_factory=dict)
    eta_at: datetime | None = None
    next_update_at: datetime | None = None
    alternative: str | None = None
    compensation: str | None = None
    channels: tuple[str, ...] = ()  # empty: every enabled channel
    author: str = ""


@dataclass(frozen=True, slots=True)
class Preview:
    renders: dict[str, dict[str, RenderedMessage]]  # channel -> locale -> message
    findings: list[Finding]


@dataclass(frozen=True, slots=True)
class Published:
    incident: Incident
    update: IncidentUpdate
    deliveries: dict[str, int]  # channel -> rows written
    findings: list[Finding]


@dataclass(frozen=True, slots=True)
class _IncidentFacts:
    incident_id: int
    title: str
    impact: str
    components: tuple[str, ...]
    is_first: bool


def enabled_channels(settings: Settings, chosen: Sequence[str] = ()) -> list[str]:
    names = [n for n in ("twitter", "facebook", "telegram", "email", "push", "blog") if _enabled(settings, n)]
    if not chosen:
        return names
    unknown = [c for c in chosen if c not in names]
    if unknown:
        raise PublishError(
            f"unknown or disabled channel(s): {', '.join(unknown)} (enabled: {', '.join(names)})"
        )
    return [n for n in names if n in chosen]


def _enabled(settings: Settings, name: str) -> bool:
    return bool(getattr(settings.channels, name).enabled)


def check_components(settings: Settings, components: Sequence[str]) -> None:
    if not components:
        raise PublishError("name at least one affected component (--component)")
    unknown = [c for c in components if c not in settings.components]
    if unknown:
        known = ", ".join(settings.components)
        raise PublishError(f"unknown component(s): {', '.join(unknown)} (known: {known})")


def _messages(settings: Settings, draft: UpdateDraft) -> dict[str, str]:
    if not draft.message.strip():
        raise PublishError("the message is empty: write what customers should know")
    messages = {settings.brand.default_locale: draft.message.strip()}
    for locale, text in draft.translations.items():
        if locale not in settings.brand.locales:
            raise PublishError(
                f"translation for unknown locale {locale!r} (locales: {settings.brand.locales})"
            )
        if text.strip():
            messages[locale] = text.strip()
    return messages


def _context(
    settings: Settings,
    facts: _IncidentFacts,
    draft: UpdateDraft,
    kind: MessageKind,
    locale: str,
    messages: dict[str, str],
    published_at: datetime,
) -> MessageContext:
    brand = settings.brand
    alternative = (
        draft.alternative or brand.alternative.get(locale) or brand.alternative.get(brand.default_locale)
    )
    base_url = settings.server.public_base_url.rstrip("/")
    return MessageContext(
        brand=Brand(
            name=brand.name,
            public_url=brand.public_url,
            status_url=settings.status_url,
            timezone=brand.timezone,
        ),
        locale=locale,
        kind=kind,
        incident_id=facts.incident_id,
        title=facts.title,
        impact=facts.impact,
        status=draft.status,
        message=messages.get(locale) or messages[brand.default_locale],
        published_at=published_at,
        components=tuple(settings.component_label(c, locale) for c in facts.components),
        eta_at=draft.eta_at,
        next_update_at=draft.next_update_at,
        alternative=alternative or None,
        compensation=draft.compensation or None,
        is_first_update=facts.is_first,
        incident_url=f"{base_url}/incidents/{facts.incident_id}" if facts.incident_id else "",
    )


def _render(
    settings: Settings,
    composer: Composer,
    facts: _IncidentFacts,
    draft: UpdateDraft,
    kind: MessageKind,
    published_at: datetime,
) -> Preview:
    messages = _messages(settings, draft)
    channels = enabled_channels(settings, draft.channels)
    renders: dict[str, dict[str, RenderedMessage]] = {}
    for locale in messages:  # a locale without its own text gets the default locale's message
        context = _context(settings, facts, draft, kind, locale, messages, published_at)
        for channel in channels:
            renders.setdefault(channel, {})[locale] = composer.render(channel, context)
    critical = any(settings.components[c].critical for c in facts.components)
    has_alternative = bool(draft.alternative or settings.brand.alternative)
    findings = lint(
        Draft(
            kind=kind,
            messages=messages,
            is_first_update=facts.is_first,
            has_eta=draft.eta_at is not None,
            has_next_update=draft.next_update_at is not None,
            critical_components_down=critical,
            has_alternative=has_alternative,
            has_compensation=bool(draft.compensation),
        ),
        [m for per_locale in renders.values() for m in per_locale.values()],
    )
    return Preview(renders=renders, findings=findings)


def preview(
    settings: Settings,
    composer: Composer,
    *,
    title: str,
    impact: str,
    components: Sequence[str],
    draft: UpdateDraft,
    kind: MessageKind = "update",
    is_first: bool = True,
) -> Preview:
    """Render every channel × locale and lint, without writing anything."""
    check_components(settings, components)
    facts = _IncidentFacts(0, title, impact, tuple(components), is_first)
    return _render(settings, composer, facts, draft, kind, utcnow())


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
) -> Published:
    assert incident.id is not None
    now = utcnow()
    facts = _IncidentFacts(incident.id, incident.title, incident.impact, tuple(incident.components), is_first)
    rendered = _render(settings, composer, facts, draft, kind, now)
    if has_errors(rendered.findings) and not force:
        raise LintRefused(rendered.findings)
    channels = list(rendered.renders)
    update = IncidentUpdate(
        incident_id=incident.id,
        kind=kind,
        status=draft.status,
        messages=_messages(settings, draft),
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
    default_locale = settings.brand.default_locale

    def rendition_for(channel: str, locale: str) -> Rendition:
        return renditions.get((channel, locale)) or renditions[(channel, default_locale)]

    rows = [
        {
            "update_id": update.id,
            "channel": r.channel,
            "target": r.target,
            "locale": rendition_for(r.channel, r.locale).locale,
            "rendition_id": rendition_for(r.channel, r.locale).id,
            "subscription_id": r.subscription_id,
            "status": outbox.PENDING,
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
            "claim_token": "",
            "last_error": "",
            "provider_message_id": "",
        }
        for r in recipients
    ]
    await outbox.insert_deliveries(session, rows)
    incident.status = draft.status
    incident.next_update_at = draft.next_update_at
    if draft.alternative:
        incident.workaround = {settings.brand.default_locale: draft.alternative}
    if draft.compensation:
        incident.compensation = draft.compensation
    component_status = "operational" if kind == "resolved" else COMPONENT_STATUS_BY_IMPACT[incident.impact]
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
) -> Published:
    """Create an incident and publish its first update to every enabled channel."""
    if not title.strip():
        raise PublishError("the incident needs a title (--title)")
    if impact not in IMPACTS:
        raise PublishError(f"unknown impact {impact!r} (choose from {', '.join(IMPACTS)})")
    if draft.status not in INCIDENT_STATUSES:
        raise PublishError(f"unknown status {draft.status!r} (choose from {', '.join(INCIDENT_STATUSES)})")
    check_components(settings, components)
    await sync_components(session, settings)
    incident = Incident(title=title.strip(), status=draft.status, impact=impact, components=list(components))
    session.add(incident)
    await session.flush()
    try:
        return await _write_update(
            session, settings, composer, incident, draft, "update", is_first=True, force=force
        )
    except BaseException:
        await session.rollback()
        raise


async def _load_open(session: AsyncSession, incident_id: int) -> Incident:
    incident = await session.get(Incident, incident_id)
    if incident is None:
        raise PublishError(f"no incident #{incident_id}")
    if incident.status == "resolved":
        raise PublishError(f"incident #{incident_id} is already resolved")
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
    try:
        return await _write_update(
            session, settings, composer, incident, draft, "update", is_first=False, force=force
        )
    except BaseException:
        await session.rollback()
        raise


async def resolve_incident(
    session: AsyncSession,
    settings: Settings,
    composer: Composer,
    incident_id: int,
    draft: UpdateDraft,
    *,
    force: bool = False,
) -> Published:
    """Publish the resolution (thanks, compensation) and mark components operational."""
    incident = await _load_open(session, incident_id)
    incident.resolved_at = utcnow()
    resolved = UpdateDraft(
        status="resolved",
        message=draft.message,
        translations=draft.translations,
        alternative=draft.alternative,
        compensation=draft.compensation,
        channels=draft.channels,
        author=draft.author,
    )
    try:
        return await _write_update(
            session, settings, composer, incident, resolved, "resolved", is_first=False, force=force
        )
    except BaseException:
        await session.rollback()
        raise
