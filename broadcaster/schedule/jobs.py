"""What each scheduled job does: remind the staff, post a holding message, send a maintenance notice,
start or end a maintenance, remind the staff of a postmortem.

Each job acts once: its `ScheduledRun` row is written in the same transaction as what it does, so a
job fired twice (two nodes, a retry after a crash) finds the key taken and does nothing. A job whose
incident changed meanwhile (the promised update came, the maintenance moved) is stale: not run, also
when it fires at its old time before the scheduler's next sync moved it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlmodel.ext.asyncio.session import AsyncSession

from broadcaster.compose.render import Composer, format_when
from broadcaster.config import Settings
from broadcaster.db import SessionFactory, dialect_name, upsert_insert
from broadcaster.delivery.staff_alerts import STAFF_CHANNELS, queue_staff_alert
from broadcaster.models import Incident, ScheduledRun
from broadcaster.publishing.drafting import UpdateDraft
from broadcaster.publishing.incidents import post_update, promised_update_at
from broadcaster.schedule.plan import PlannedJob, plan

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class JobContext:
    """What jobs need: settings, the database, the composer, and who to wake for queued messages."""

    settings: Settings
    sessions: SessionFactory
    composer: Composer
    on_queued: Callable[[Sequence[str]], None] | None = None


async def execute(context: JobContext, job: PlannedJob, now: datetime) -> str:
    """Run `job` at `now`: "done", "stale" (no longer planned, or moved) or "duplicate" (it already ran)."""
    async with context.sessions() as session:
        planned = {j.run_key: j for j in await plan(session, context.settings, incident_id=job.incident_id)}
        current = planned.get(job.run_key)
        if current is None or current.run_at != job.run_at:
            return "stale"
        session.add(ScheduledRun(key=job.run_key, kind=job.kind, incident_id=job.incident_id,
                                 outcome="done", due_at=job.run_at, ran_at=now))  # fmt: skip
        try:
            channels = await _ACTIONS[job.kind](context, session, job, now)
            await session.commit()
        except IntegrityError:  # another node recorded this run first: it acted, we must not
            await session.rollback()
            return "duplicate"
    if channels and context.on_queued is not None:
        context.on_queued(channels)
    log.info("scheduled %s for incident #%d done", job.kind, job.incident_id)
    return "done"


async def record_missed(context: JobContext, job: PlannedJob, now: datetime) -> None:
    """Remember that `job` was not run in its grace period (the process was down): shown by `schedule`."""
    log.warning("scheduled %s for incident #%d was due at %s: missed", job.kind, job.incident_id,
                job.run_at.isoformat())  # fmt: skip
    row = {"key": job.run_key, "kind": job.kind, "incident_id": job.incident_id, "outcome": "missed",
           "detail": f"not run within its grace of {job.grace_seconds:.0f} s (no scheduler was running)",
           "due_at": job.run_at, "ran_at": now}  # fmt: skip
    async with context.sessions() as session:
        insert = upsert_insert(dialect_name(session))
        await session.exec(insert(ScheduledRun).values(row).on_conflict_do_nothing(index_elements=["key"]))
        await session.commit()


def _when(settings: Settings, moment: datetime, now: datetime) -> str:
    return format_when(
        moment, timezone=settings.brand.timezone, locale=settings.brand.default_locale, now=now
    )


async def _incident(session: AsyncSession, job: PlannedJob) -> Incident:
    incident = await session.get(Incident, job.incident_id)
    assert incident is not None  # it was just planned from it
    return incident


async def _remind(context: JobContext, session: AsyncSession, job: PlannedJob, now: datetime) -> list[str]:
    settings, incident = context.settings, await _incident(session, job)
    assert incident.next_update_at is not None
    promised = _when(settings, incident.next_update_at, now)
    holding = (
        f"Without it, the holding message goes out {settings.schedule.holding_grace_minutes:g} min after "
        "the promised time."
        if incident.holding_messages
        else "No holding message is planned for this incident: customers hear nothing until you post."
    )
    text = (
        f"Incident #{incident.id} — {incident.title}\n"
        f"The next update was promised for {promised}. Customers are waiting for it.\n{holding}\n\n"
        f"Post it now:\n  broadcaster incident update {incident.id} --status {incident.status} "
        '--message "…" --next-update "…"\n'
    )
    subject = f"Incident #{incident.id}: the update promised for {promised} is due"
    await queue_staff_alert(await session.connection(), settings, subject, text, now)
    return list(STAFF_CHANNELS)


async def _hold(context: JobContext, session: AsyncSession, job: PlannedJob, now: datetime) -> list[str]:
    settings, incident = context.settings, await _incident(session, job)
    texts = settings.schedule.holding_message
    default = settings.brand.default_locale
    message = texts.get(default) or next(iter(texts.values()))
    draft = UpdateDraft(
        status=incident.status,
        message=message,
        translations={locale: text for locale, text in texts.items() if locale != default},
        next_update_at=promised_update_at(settings, incident.impact, now),
        channels=job.channels,
        author="scheduler (holding message)",
    )
    # The approved text from the configuration: the linter's advice is for people writing under stress.
    published = await post_update(session, settings, context.composer, job.incident_id, draft, force=True)
    return list(published.deliveries)


async def _notice(context: JobContext, session: AsyncSession, job: PlannedJob, now: datetime) -> list[str]:
    from broadcaster.publishing.maintenance import post_notice

    published = await post_notice(session, context.settings, job.incident_id, phase="notice",
                                  channels=list(job.channels), now=now)  # fmt: skip
    return list(published.deliveries) if published is not None else []


async def _start(context: JobContext, session: AsyncSession, job: PlannedJob, now: datetime) -> list[str]:
    from broadcaster.publishing.maintenance import start_maintenance

    published = await start_maintenance(session, context.settings, job.incident_id, now)
    return list(published.deliveries) if published is not None else []


async def _end(context: JobContext, session: AsyncSession, job: PlannedJob, now: datetime) -> list[str]:
    from broadcaster.publishing.maintenance import complete_maintenance

    published = await complete_maintenance(session, context.settings, job.incident_id, now)
    return list(published.deliveries) if published is not None else []


async def _postmortem(
    context: JobContext, session: AsyncSession, job: PlannedJob, now: datetime
) -> list[str]:
    from broadcaster.publishing.postmortem import draft_postmortem

    settings, incident = context.settings, await _incident(session, job)
    draft = await draft_postmortem(session, settings, job.incident_id)
    subject = f"Incident #{incident.id} was resolved: publish its postmortem"
    text = (
        f"Incident #{incident.id} — {incident.title}\n"
        "Customers trust a shop that explains what happened. A draft, made from the timeline, is below: "
        "write the cause and what you change, then publish it on the blog:\n"
        f'  broadcaster incident postmortem {incident.id} --cause "…" --changes "…"\n'
        f"  broadcaster incident postmortem {incident.id} --publish\n\n{draft}"
    )
    await queue_staff_alert(await session.connection(), settings, subject, text, now)
    return list(STAFF_CHANNELS)


_Action = Callable[[JobContext, AsyncSession, PlannedJob, datetime], Awaitable[list[str]]]
_ACTIONS: dict[str, _Action] = {
    "reminder": _remind,
    "holding": _hold,
    "notice": _notice,
    "start": _start,
    "end": _end,
    "postmortem": _postmortem,
}
