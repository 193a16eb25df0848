"""Maintenance windows (issue #5): schedule, announce, start, complete, reschedule, cancel.

The scheduler calls these at the notice ladder's times; the CLI calls them for people. A change of
the plan (rescheduled, extended, shortened, cancelled) is told to those who heard of the window and
to nobody else (`maintenance_notice`); before the first notice it is silent. Each public
function validates first and raises `MaintenanceError` before writing anything, then commits once,
at the end, all or nothing: a caller may `session.add()` a row beforehand (the scheduler's run key)
and it is committed atomically with what the function does, also when it returns None (nothing to
do). The community manager's text is kept in the maintenance's first update ("scheduled", sent to
no channel) and every notice reuses it.

    incident = await schedule_maintenance(session, settings, title="Mise à jour du paiement",
        starts_at=start, ends_at=end, components=["checkout"], message={"fr": "…"}, author="cm", now=now)
    await post_notice(session, settings, incident.id, phase="notice", channels=["email"], now=now)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from sqlalchemy import update as sql_update
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from broadcaster.auth.audit import record
from broadcaster.compose.lint import has_errors
from broadcaster.config import Settings
from broadcaster.control_characters import control_character
from broadcaster.localtime import local_time
from broadcaster.models import Incident, IncidentUpdate
from broadcaster.publishing.drafting import (
    IncidentFacts,
    LintRefused,
    PublishError,
    check_components,
    enabled_channels,
    localized_titles,
    render_update,
)
from broadcaster.publishing.maintenance_notice import (
    MaintenanceError,
    Unannounced,
    composer_for,
    notice_draft,
    publish_notice,
    tell_those_told,
)
from broadcaster.publishing.update_writer import Published, add_missing_components, one_transaction
from channels.registry import CHANNEL_NAMES

__all__ = [
    "PHASES",
    "MaintenanceError",
    "Unannounced",
    "cancel_maintenance",
    "complete_maintenance",
    "complete_maintenance_now",
    "post_notice",
    "reschedule_maintenance",
    "schedule_maintenance",
    "start_maintenance",
]

#: What a maintenance notice announces, in the order a window lives through them.
PHASES = ("notice", "rescheduled", "started", "extended", "shortened", "completed", "cancelled")
MAINTENANCE_IMPACT = "none"  # a planned window is not an outage; components show "maintenance"
OVER = ("completed", "cancelled")


def _aware(value: datetime, option: str) -> None:
    if value.tzinfo is None:
        raise MaintenanceError(f"{option} {value.isoformat()} has no time zone")


def _check_window(
    settings: Settings, starts_at: datetime, ends_at: datetime, now: datetime, *, check_start: bool = True
) -> None:
    """The end after the start; the start still ahead (unless the window is already running).

    Errors show the times on the brand's clock and name its zone, never in UTC.
    """
    _aware(starts_at, "--starts")
    _aware(ends_at, "--ends")
    zone = settings.brand.timezone
    start, end, clock = (
        local_time(t, zone, locale=settings.brand.default_locale, now=now) for t in (starts_at, ends_at, now)
    )
    if ends_at <= starts_at:
        raise MaintenanceError(f"--ends {end} must be after --starts {start} ({zone})")
    if check_start and starts_at <= now:
        raise MaintenanceError(
            f"--starts {start} is in the past (it is now {clock}, {zone}): a maintenance is announced "
            "before it begins"
        )
    if ends_at <= now:
        raise MaintenanceError(f"--ends {end} is in the past (it is now {clock}, {zone})")


def _check_messages(settings: Settings, message: Mapping[str, str]) -> dict[str, str]:
    default = settings.brand.default_locale
    if not message.get(default, "").strip():
        raise MaintenanceError(
            f"the message in {default!r} is empty (--message): say what the maintenance brings customers"
        )
    unknown = [locale for locale in message if locale not in settings.brand.locales]
    if unknown:
        locales = ", ".join(settings.brand.locales)
        raise MaintenanceError(f"message for unknown locale(s) {', '.join(unknown)} (locales: {locales})")
    for locale, text in message.items():
        problem = control_character(text)
        if problem:
            option = "--message" if locale == default else f"--translation {locale}"
            raise MaintenanceError(f"{option}: {problem}")
    return {locale: text.strip() for locale, text in message.items() if text.strip()}


async def schedule_maintenance(
    session: AsyncSession,
    settings: Settings,
    *,
    title: str,
    starts_at: datetime,
    ends_at: datetime,
    components: Sequence[str],
    message: Mapping[str, str],
    author: str,
    now: datetime,
    title_translations: Mapping[str, str] | None = None,
    force: bool = False,
) -> Incident:
    """Record a maintenance window (status "scheduled"); the scheduler sends its notices.

    `title_translations`: the title in the brand's other locales.
    The notice is rendered and linted now, so a problem shows up while someone can fix it
    (`LintRefused` unless `force`); nothing is sent here.
    """
    if not title.strip():
        raise MaintenanceError("the maintenance needs a title (--title)")
    _check_window(settings, starts_at, ends_at, now)
    try:
        check_components(settings, components)
        titles = localized_titles(settings, title, title_translations or {})
    except PublishError as exc:
        raise MaintenanceError(str(exc)) from None
    messages = _check_messages(settings, message)
    incident = Incident(
        kind="maintenance",
        title=title.strip(),
        title_translations={loc: t for loc, t in titles.items() if loc != settings.brand.default_locale},
        status="scheduled",
        impact=MAINTENANCE_IMPACT,
        components=list(dict.fromkeys(components)),
        scheduled_start_at=starts_at,
        scheduled_end_at=ends_at,
        created_at=now,
    )
    draft = notice_draft(
        settings, messages, incident, phase="notice", status="scheduled", channels=(), author=author
    )
    facts = IncidentFacts(
        0, incident.title, incident.impact, tuple(incident.components), False, titles=titles
    )
    preview = render_update(settings, composer_for(settings), facts, draft, "maintenance_notice", now)
    if has_errors(preview.findings) and not force:
        raise LintRefused(preview.findings)
    async with one_transaction(session):
        await add_missing_components(session, settings)
        session.add(incident)
        await session.flush()
        assert incident.id is not None
        session.add(
            IncidentUpdate(
                incident_id=incident.id,
                kind="maintenance_notice",
                status="scheduled",
                messages=messages,
                channels=[],  # the record of the announcement; the ladder's notices carry the deliveries
                author=author,
                created_at=now,
            )
        )
        record(
            session,
            "maintenance.schedule",
            f"incident:{incident.id}",
            f"{incident.title}: {_window(incident)}",
        )
    return incident


def _window(incident: Incident) -> str:
    start, end = incident.scheduled_start_at, incident.scheduled_end_at
    return f"{start.isoformat() if start else '?'} → {end.isoformat() if end else '?'}"


async def _load(session: AsyncSession, incident_id: int) -> Incident:
    incident = await session.get(Incident, incident_id)
    if incident is None or incident.kind != "maintenance":
        raise MaintenanceError(f"no maintenance #{incident_id}")
    return incident


async def _nothing(session: AsyncSession) -> None:
    await session.commit()  # what the caller added (a run key) is still committed


async def post_notice(
    session: AsyncSession,
    settings: Settings,
    incident_id: int,
    *,
    phase: str,
    channels: Sequence[str],
    now: datetime,
    author: str = "scheduler",
) -> Published | None:
    """Send one notice of a maintenance on `channels` (those enabled; none enabled: None).

    A "notice" for a maintenance that is no longer scheduled (started, cancelled) does nothing: None.
    """
    if phase not in PHASES:
        raise MaintenanceError(f"unknown maintenance phase {phase!r} (choose from {', '.join(PHASES)})")
    incident = await _load(session, incident_id)
    enabled = enabled_channels(settings)
    unknown = [c for c in channels if c not in CHANNEL_NAMES]
    if unknown:
        raise MaintenanceError(f"unknown channel(s): {', '.join(unknown)}")
    chosen = [c for c in enabled if c in channels]
    async with one_transaction(session):
        if not chosen or (phase == "notice" and not await _hold(session, incident_id, "scheduled")):
            await _nothing(session)
            return None
        await session.refresh(incident)  # the times as the hold found them (a reschedule may have moved them)
        return await publish_notice(
            session, settings, incident, phase=phase, status=incident.status, channels=chosen,
            author=author, now=now,
        )  # fmt: skip


async def _take(session: AsyncSession, incident_id: int, *, expected: str, status: str) -> bool:
    """Move the status on, unless someone (a second firing, a person) already did."""
    taken = await (await session.connection()).execute(
        sql_update(Incident)
        .where(col(Incident.id) == incident_id, col(Incident.status) == expected)
        .values(status=status)
    )
    return bool(taken.rowcount == 1)


async def _hold(session: AsyncSession, incident_id: int, status: str) -> bool:
    """Lock the maintenance's row until the commit if it still has `status`.

    A notice and a change of plan hold it in turn, so the change sees every delivery of the notice
    (and tells them), or the notice sees the changed plan.
    """
    return await _take(session, incident_id, expected=status, status=status)


async def start_maintenance(
    session: AsyncSession, settings: Settings, incident_id: int, now: datetime
) -> Published | None:
    """The window opens: components → maintenance, status → in_progress, "started" on every channel.

    None (nothing done) if the maintenance is not scheduled any more (cancelled, already started).
    """
    incident = await _load(session, incident_id)
    async with one_transaction(session):
        if incident.status != "scheduled" or not await _take(
            session, incident_id, expected="scheduled", status="in_progress"
        ):
            await _nothing(session)
            return None
        return await publish_notice(
            session, settings, incident, phase="started", status="in_progress",
            channels=enabled_channels(settings), author="scheduler", now=now,
        )  # fmt: skip


async def complete_maintenance(
    session: AsyncSession, settings: Settings, incident_id: int, now: datetime
) -> Published | None:
    """The planned end arrives (the scheduler): components → operational, status → completed, notice.

    None (nothing done) when it is not in progress (completed early, cancelled), or when its end was
    moved later (extended).
    """
    incident = await _load(session, incident_id)
    end = incident.scheduled_end_at
    async with one_transaction(session):
        if (
            incident.status != "in_progress"
            or (end is not None and end > now)
            or not await _take(session, incident_id, expected="in_progress", status="completed")
        ):
            await _nothing(session)
            return None
        return await _close(session, settings, incident, now=now, author="scheduler")


async def complete_maintenance_now(
    session: AsyncSession, settings: Settings, incident_id: int, *, now: datetime, author: str
) -> Published:
    """End a running maintenance now, also before its planned end (`maintenance complete`).

    Components back to operational, "completed" on every channel; the scheduler's end job then has
    nothing to do. Refused (`MaintenanceError`) unless the maintenance is in progress.
    """
    incident = await _load(session, incident_id)
    if incident.status == "scheduled":
        raise MaintenanceError(
            f"maintenance #{incident_id} has not started: only a running one can be completed "
            f"(to call it off: broadcaster maintenance cancel {incident_id})"
        )
    if incident.status != "in_progress":
        raise MaintenanceError(f"maintenance #{incident_id} is already {incident.status}")
    async with one_transaction(session):
        if not await _take(session, incident_id, expected="in_progress", status="completed"):
            raise MaintenanceError(f"maintenance #{incident_id} changed meanwhile: look at it again")
        record(session, "maintenance.complete", f"incident:{incident_id}", "completed before its planned end")
        return await _close(session, settings, incident, now=now, author=author)


async def _close(
    session: AsyncSession, settings: Settings, incident: Incident, *, now: datetime, author: str
) -> Published:
    """The "completed" notice on every channel, components back to operational."""
    incident.resolved_at = now
    return await publish_notice(
        session, settings, incident, phase="completed", status="completed",
        channels=enabled_channels(settings), author=author, now=now,
    )  # fmt: skip


async def reschedule_maintenance(
    session: AsyncSession,
    settings: Settings,
    incident_id: int,
    *,
    starts_at: datetime | None = None,
    ends_at: datetime | None = None,
    now: datetime,
    author: str,
) -> Published | Unannounced:
    """Move a scheduled window ("rescheduled"), or a running one's end ("extended" / "shortened").

    The notice goes to those told of the maintenance; before its first notice nothing is sent
    (`Unannounced`) and the scheduler's notices follow the new times. While in progress only the
    end may move; once completed or cancelled nothing moves.
    """
    incident = await _load(session, incident_id)
    if incident.status in OVER:
        raise MaintenanceError(f"maintenance #{incident_id} is {incident.status}: it cannot be rescheduled")
    if starts_at is None and ends_at is None:
        raise MaintenanceError("give a new start (--starts), a new end (--ends) or both")
    old_start, old_end = incident.scheduled_start_at, incident.scheduled_end_at
    assert old_start is not None and old_end is not None
    running = incident.status == "in_progress"
    if running and starts_at is not None and starts_at != old_start:
        raise MaintenanceError(
            f"maintenance #{incident_id} has already started: only its end can move (--ends)"
        )
    new_start, new_end = starts_at or old_start, ends_at or old_end
    _check_window(settings, new_start, new_end, now, check_start=not running)
    if (new_start, new_end) == (old_start, old_end):
        raise MaintenanceError("these are the maintenance's current times: nothing to reschedule")
    async with one_transaction(session):
        if not await _hold(session, incident_id, incident.status):
            raise MaintenanceError(f"maintenance #{incident_id} changed meanwhile: look at it again")
        incident.scheduled_start_at, incident.scheduled_end_at = new_start, new_end
        phase = ("extended" if new_end > old_end else "shortened") if running else "rescheduled"
        record(session, "maintenance.reschedule", f"incident:{incident_id}", f"{phase}: {_window(incident)}")
        return await tell_those_told(
            session, settings, incident, phase=phase, running=running, author=author, now=now,
            previous_starts_at=old_start, previous_ends_at=old_end,
        )  # fmt: skip


async def cancel_maintenance(
    session: AsyncSession, settings: Settings, incident_id: int, *, now: datetime, author: str
) -> Published | Unannounced:
    """Call a maintenance off: status cancelled, "cancelled" notice to those told of it (nobody yet:
    `Unannounced`, nothing sent); if it was running, components back."""
    incident = await _load(session, incident_id)
    if incident.status in OVER:
        raise MaintenanceError(f"maintenance #{incident_id} is already {incident.status}")
    running = incident.status == "in_progress"
    async with one_transaction(session):
        if not await _take(session, incident_id, expected=incident.status, status="cancelled"):
            raise MaintenanceError(f"maintenance #{incident_id} changed meanwhile: look at it again")
        incident.status, incident.resolved_at = "cancelled", now
        record(
            session,
            "maintenance.cancel",
            f"incident:{incident_id}",
            "running" if running else "before it began",
        )
        return await tell_those_told(
            session, settings, incident, phase="cancelled", running=running, author=author, now=now,
        )  # fmt: skip
