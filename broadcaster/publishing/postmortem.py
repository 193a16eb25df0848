"""Postmortem reports: a Markdown draft built from an incident's timeline, saved, then posted on the blog.

The draft says what happened, when, who was affected, in numbers, then leaves "Cause" and "What we
change" to the staff (a visible placeholder until they write them). Publishing posts the saved
report as an update of kind "postmortem" on the blog channel only, through the outbox.

    markdown = await draft_postmortem(session, settings, 12, cause="…", changes="…")
    await save_postmortem(session, 12, markdown)
    published = await publish_postmortem(session, settings, composer, 12, author="ana", now=utcnow())
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
from babel import Locale, UnknownLocaleError
from babel.dates import format_date
from babel.lists import format_list
from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from broadcaster.auth.audit import record
from broadcaster.compose.render import Composer, format_when, impact_words, status_words
from broadcaster.config import Settings
from broadcaster.delivery import outbox
from broadcaster.message import MessageKind
from broadcaster.models import Conversation, Incident, IncidentUpdate, Message
from broadcaster.publishing.drafting import PublishError, UpdateDraft, enabled_channels
from broadcaster.publishing.update_writer import Published, changes_between, one_transaction, write_update
from channels.registry import CHANNEL_NAMES, SPECS

__all__ = [
    "PLACEHOLDERS",
    "PostmortemError",
    "draft_postmortem",
    "missing_sections",
    "publish_postmortem",
    "save_postmortem",
]

POSTMORTEM_KIND: MessageKind = "postmortem"

#: What the draft says where the staff must still write; publishing refuses while one is left.
PLACEHOLDERS: dict[str, dict[str, str]] = {
    "fr": {
        "cause": "_À compléter par l'équipe : expliquez en mots simples ce qui s'est passé et pourquoi, "
        "sans jargon et sans reporter la faute sur les clients._",
        "changes": "_À compléter par l'équipe : les mesures concrètes que nous prenons et quand, "
        "sans promettre l'impossible._",
    },
    "en": {
        "cause": "_To be written by the team: explain in plain words what happened and why, "
        "without jargon and without blaming customers._",
        "changes": "_To be written by the team: the concrete measures we are taking and when, "
        "without promising the impossible._",
    },
}

_NOT_DELIVERED = (outbox.FAILED, outbox.DEAD)
_WAITING = (outbox.PENDING, outbox.SENDING)


class PostmortemError(PublishError):
    """The postmortem cannot be drafted, saved or published as asked; nothing was written."""


def _language(locale: str) -> str:
    return locale.replace("-", "_").split("_")[0].lower()


def _report_language(settings: Settings, locale: str | None) -> str:
    language = _language(locale or settings.brand.default_locale)
    if language not in PLACEHOLDERS:
        raise PostmortemError(f"no postmortem template for locale {locale!r} (choose from fr, en)")
    return language


def _babel_locale(language: str) -> str:
    try:
        return str(Locale.parse(language))
    except (UnknownLocaleError, ValueError):
        return "en"


def _environment(templates_dir: Path | str | None) -> jinja2.Environment:
    """Report templates: `<templates_dir>/postmortem/<lang>/report.md.j2` first, then the packaged ones."""
    loaders: list[jinja2.BaseLoader] = []
    if templates_dir:
        loaders.append(jinja2.FileSystemLoader(str(templates_dir)))
    loaders.append(jinja2.PackageLoader("message_templates", "."))
    env = jinja2.Environment(
        loader=jinja2.ChoiceLoader(loaders),
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # Markdown; the blog renders it without raw HTML
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["oneline"] = lambda text: " ".join(str(text).split())
    env.filters["and_list"] = jinja2.pass_context(
        lambda ctx, items: format_list(list(items), locale=ctx["babel_locale"])
    )
    env.globals.update(status_words=status_words, impact_words=impact_words)
    return env


async def _load_resolved(session: AsyncSession, incident_id: int) -> Incident:
    incident = await session.get(Incident, incident_id)
    if incident is None:
        raise PostmortemError(f"no incident #{incident_id}")
    if incident.status != "resolved":
        raise PostmortemError(
            f"incident #{incident_id} is not resolved yet (it is {incident.status}): "
            "a postmortem comes after the resolution"
        )
    return incident


async def _timeline(session: AsyncSession, incident_id: int) -> list[IncidentUpdate]:
    statement = (
        select(IncidentUpdate)
        .where(IncidentUpdate.incident_id == incident_id, col(IncidentUpdate.kind) != POSTMORTEM_KIND)
        .order_by(col(IncidentUpdate.created_at), col(IncidentUpdate.id))
    )
    return list(await session.exec(statement))


async def _conversation_counts(session: AsyncSession, incident_id: int) -> tuple[int, int]:
    """(conversations linked to the incident, messages customers wrote in them)."""
    conversations = (
        await session.exec(
            select(func.count()).select_from(Conversation).where(Conversation.incident_id == incident_id)
        )
    ).one()
    messages = (
        await session.exec(
            select(func.count())
            .select_from(Message)
            .join(Conversation, col(Conversation.id) == col(Message.conversation_id))
            .where(Conversation.incident_id == incident_id, Message.direction == "in")
        )
    ).one()
    return int(conversations), int(messages)


def _duration(delta: timedelta, language: str) -> str:
    """ "2 h 15 min" / "2 hr 15 min"; "45 min" under an hour."""
    minutes = max(0, round(delta.total_seconds() / 60))
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    hour = "h" if language == "fr" else "hr"
    day = ("jour", "jours") if language == "fr" else ("day", "days")
    parts = [f"{days} {day[days > 1]}"] if days else []
    parts += [f"{hours} {hour}"] if hours else []
    parts += [f"{minutes} min"] if minutes or not parts else []
    return " ".join(parts)


def _delivery_lines(counts: dict[str, dict[str, int]], language: str) -> list[dict[str, Any]]:
    return [
        {
            "label": SPECS[channel].label(language) if channel in SPECS else channel,
            "sent": per.get(outbox.SENT, 0),
            "captured": per.get(outbox.CAPTURED, 0),  # capture mode: stored, never sent to customers
            "not_delivered": sum(per.get(s, 0) for s in _NOT_DELIVERED),
            "waiting": sum(per.get(s, 0) for s in _WAITING),
        }
        for channel, per in sorted(
            counts.items(),
            key=lambda item: CHANNEL_NAMES.index(item[0]) if item[0] in CHANNEL_NAMES else len(CHANNEL_NAMES),
        )
    ]


def _what_changed(
    settings: Settings, language: str, previous: IncidentUpdate | None, update: IncidentUpdate
) -> dict[str, Any]:
    """What an update changed, with component labels in the report's language."""
    changes = changes_between(previous, update)
    return {
        "added": [settings.component_label(c, language) for c in changes.added],
        "removed": [settings.component_label(c, language) for c in changes.removed],
        "impact": update.impact,
        "previous_impact": changes.previous_impact,
    }


async def draft_postmortem(
    session: AsyncSession,
    settings: Settings,
    incident_id: int,
    *,
    locale: str | None = None,
    cause: str = "",
    changes: str = "",
) -> str:
    """The Markdown report of a resolved incident in `locale` (default: the brand's), from its timeline.

    `cause` and `changes` are the staff's words; left empty, a placeholder asks them to write it.
    """
    language = _report_language(settings, locale)
    incident = await _load_resolved(session, incident_id)
    updates = await _timeline(session, incident_id)
    started = incident.created_at
    resolved = incident.resolved_at or (updates[-1].created_at if updates else started)
    zone, babel_locale = ZoneInfo(settings.brand.timezone), _babel_locale(language)

    def clock(dt: datetime) -> str:
        return format_when(dt, timezone=settings.brand.timezone, locale=babel_locale, now=dt)

    def day(dt: datetime) -> str:
        return format_date(dt.astimezone(zone), "long", locale=babel_locale)

    same_day = started.astimezone(zone).date() == resolved.astimezone(zone).date()
    counts = await outbox.counts_by_channel(session, [u.id for u in updates if u.id is not None])
    conversations, customer_messages = await _conversation_counts(session, incident_id)
    default = settings.brand.default_locale
    variables: dict[str, Any] = {
        "lang": language,
        "brand_name": settings.brand.name,
        "title": incident.title,
        "impact": incident.impact,
        "components": format_list(
            [settings.component_label(c, language) for c in incident.components] or ["—"],
            locale=babel_locale,
        ),
        "compensation": incident.compensation or "",
        "started_day": day(started),
        "started_time": clock(started),
        "resolved_day": day(resolved),
        "resolved_time": clock(resolved),
        "same_day": same_day,
        "duration": _duration(resolved - started, language),
        "babel_locale": babel_locale,
        "timeline": [
            {
                "time": clock(u.created_at) if same_day else f"{day(u.created_at)}, {clock(u.created_at)}",
                "status": u.status,
                "message": u.messages.get(language)
                or u.messages.get(default)
                or next(iter(u.messages.values()), ""),
                **_what_changed(settings, language, previous, u),
            }
            for previous, u in zip([None, *updates], updates, strict=False)
        ],
        "deliveries": _delivery_lines(counts, language),
        "sent_total": sum(per.get(outbox.SENT, 0) for per in counts.values()),
        "captured_total": sum(per.get(outbox.CAPTURED, 0) for per in counts.values()),
        "not_delivered_total": sum(per.get(s, 0) for per in counts.values() for s in _NOT_DELIVERED),
        "conversations": conversations,
        "customer_messages": customer_messages,
        "cause": cause.strip() or PLACEHOLDERS[language]["cause"],
        "changes": changes.strip() or PLACEHOLDERS[language]["changes"],
    }
    name = f"postmortem/{language}/report.md.j2"
    try:
        template = _environment(settings.templates_dir or None).get_template(name)
        return template.render(variables).strip() + "\n"
    except (jinja2.TemplateError, ValueError) as exc:
        raise PostmortemError(f"{name}: {exc}") from exc


def missing_sections(markdown: str) -> list[str]:
    """The sections still holding a placeholder ("cause", "changes"), in any language."""
    return [
        section
        for section in ("cause", "changes")
        if any(words[section] in markdown for words in PLACEHOLDERS.values())
    ]


async def save_postmortem(session: AsyncSession, incident_id: int, markdown: str) -> Incident:
    """Store the report on the (resolved) incident and commit; empty text is refused."""
    if not markdown.strip():
        raise PostmortemError("the postmortem is empty: draft it first, or give a file with the report")
    incident = await _load_resolved(session, incident_id)
    incident.postmortem = markdown.strip() + "\n"
    session.add(incident)
    record(session, "postmortem.save", f"incident:{incident_id}", f"{len(incident.postmortem)} characters")
    await session.commit()
    await session.refresh(incident)
    return incident


async def _already_published(session: AsyncSession, incident_id: int) -> bool:
    statement = select(IncidentUpdate.id).where(
        IncidentUpdate.incident_id == incident_id, IncidentUpdate.kind == POSTMORTEM_KIND
    )
    return (await session.exec(statement)).first() is not None


async def publish_postmortem(
    session: AsyncSession,
    settings: Settings,
    composer: Composer,
    incident_id: int,
    *,
    author: str,
    now: datetime | None = None,
    force: bool = False,
) -> Published:
    """Post the saved report on the blog channel (an update of kind "postmortem", via the outbox).

    Refused when no report is saved, placeholders are left, the blog is disabled, or the report
    was already published; `force=True` publishes again and overrides placeholders and lint errors.
    """
    incident = await _load_resolved(session, incident_id)
    markdown = (incident.postmortem or "").strip()
    if not markdown:
        raise PostmortemError(
            f"incident #{incident_id} has no saved postmortem: draft it first "
            f"(broadcaster incident postmortem {incident_id} --cause … --changes …)"
        )
    missing = missing_sections(markdown)
    if missing and not force:
        raise PostmortemError(
            f"the postmortem of incident #{incident_id} still has a placeholder for: {', '.join(missing)}; "
            "write it (--cause / --changes, or edit the draft and use --from-file)"
        )
    if "blog" not in enabled_channels(settings):
        raise PostmortemError("the blog channel is not enabled: set [channels.blog] enabled = true")
    if await _already_published(session, incident_id) and not force:
        raise PostmortemError(
            f"the postmortem of incident #{incident_id} is already published; use --force to post it again"
        )
    draft = UpdateDraft(status="resolved", message=markdown, channels=("blog",), author=author)
    async with one_transaction(session):
        return await write_update(
            session,
            settings,
            composer,
            incident,
            draft,
            POSTMORTEM_KIND,
            is_first=False,
            force=force,
            now=now,
        )
