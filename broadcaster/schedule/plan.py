"""What the scheduler must do, and when, read from the incidents themselves.

The database is the source of truth: an incident's `next_update_at`, a maintenance's planned start
and end, a resolution without a postmortem. `plan` turns them into `PlannedJob`s; the scheduler
mirrors them into APScheduler (whose store only caches them) and runs each at its time. A job that
ran, or was missed, leaves a `ScheduledRun` under its `run_key`, so it is never planned again; a
promise kept in time (a new update) changes the plan, and the stale job is dropped.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import and_, func, or_
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from broadcaster.config import Settings
from broadcaster.models import NOT_OPEN, Incident, IncidentUpdate, ScheduledRun
from broadcaster.publishing.drafting import enabled_channels

JobKind = Literal["reminder", "holding", "notice", "start", "end", "postmortem"]

#: APScheduler job ids start with one of these: anything else in its store is not ours.
JOB_PREFIXES = ("followup:", "notice:", "maintenance:", "postmortem:")


@dataclass(frozen=True, slots=True)
class PlannedJob:
    """One thing the scheduler will do for an incident.

    `id` is the stable APScheduler job id (`followup:12:reminder`, `notice:7:72`): the same job
    moves when its time changes. `run_key` names this very occurrence (a promise's reminder carries
    the promised time), the key a run is recorded under.
    """

    id: str
    run_key: str
    kind: JobKind
    incident_id: int
    title: str
    run_at: datetime
    grace_seconds: float
    channels: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "kind": self.kind,
            "incident_id": self.incident_id,
            "incident": self.title,
            "run_at": self.run_at.isoformat(),
            "channels": list(self.channels),
            "grace_seconds": self.grace_seconds,
        }


def _grace(settings: Settings, kind: str) -> float:
    return settings.schedule.grace_minutes.get(kind, 60.0) * 60


def _hours_label(hours: str) -> str:
    value = float(hours)
    return str(int(value)) if value.is_integer() else str(value)


def ladder(settings: Settings) -> list[tuple[str, float, tuple[str, ...]]]:
    """The maintenance notice ladder as (label, hours before the start, enabled channels), earliest first."""
    enabled = set(enabled_channels(settings))
    rungs = [
        (_hours_label(hours), float(hours), tuple(c for c in channels if c in enabled))
        for hours, channels in settings.schedule.maintenance_ladder.items()
    ]
    return sorted((rung for rung in rungs if rung[2]), key=lambda rung: -rung[1])


def followup_jobs(settings: Settings, incident: Incident, channels: Sequence[str]) -> list[PlannedJob]:
    """A promised next update: staff reminded at the promised time, the holding message after the grace."""
    assert incident.id is not None and incident.next_update_at is not None
    due = incident.next_update_at
    promise = due.isoformat()
    jobs = [
        PlannedJob(f"followup:{incident.id}:reminder", f"followup:{incident.id}:reminder:{promise}",
                   "reminder", incident.id, incident.title, due, _grace(settings, "reminder")),
    ]  # fmt: skip
    if incident.holding_messages:
        holding_at = due + timedelta(minutes=settings.schedule.holding_grace_minutes)
        jobs.append(
            PlannedJob(
                f"followup:{incident.id}:holding",
                f"followup:{incident.id}:holding:{promise}",
                "holding",
                incident.id,
                incident.title,
                holding_at,
                _grace(settings, "holding"),
                tuple(channels),
            )  # fmt: skip
        )
    return jobs


def maintenance_jobs(settings: Settings, incident: Incident) -> list[PlannedJob]:
    """The notice ladder before a maintenance, its start and its end.

    A rung whose time had already passed when the maintenance was scheduled runs at once (a
    maintenance announced 2 h ahead still tells e-mail subscribers); a notice is never sent once the
    maintenance has started: its grace ends at the start.
    """
    assert incident.id is not None
    start, end = incident.scheduled_start_at, incident.scheduled_end_at
    if start is None or end is None:
        return []
    jobs: list[PlannedJob] = []
    if incident.status == "scheduled":
        for label, hours, channels in ladder(settings):
            run_at = max(start - timedelta(hours=hours), incident.created_at)
            if run_at >= start:
                continue
            key = f"notice:{incident.id}:{label}"
            grace = max((start - run_at).total_seconds(), 1.0)
            jobs.append(PlannedJob(key, key, "notice", incident.id, incident.title, run_at, grace, channels))
        start_key = f"maintenance:{incident.id}:start"
        jobs.append(
            PlannedJob(start_key, f"{start_key}:{start.isoformat()}", "start", incident.id, incident.title,
                       start, _grace(settings, "start"))
        )  # fmt: skip
    jobs.append(
        PlannedJob(f"maintenance:{incident.id}:end", f"maintenance:{incident.id}:end:{end.isoformat()}",
                   "end", incident.id, incident.title, end, _grace(settings, "end"))
    )  # fmt: skip
    return jobs


def postmortem_job(settings: Settings, incident: Incident) -> PlannedJob:
    assert incident.id is not None and incident.resolved_at is not None
    run_at = incident.resolved_at + timedelta(hours=settings.schedule.postmortem_delay_hours)
    key = f"postmortem:{incident.id}"
    return PlannedJob(
        key, key, "postmortem", incident.id, incident.title, run_at, _grace(settings, "postmortem")
    )


async def plan(
    session: AsyncSession, settings: Settings, *, incident_id: int | None = None
) -> list[PlannedJob]:
    """Every job still to run (never run nor missed), by time; only `incident_id`'s when given."""
    relevant = or_(
        and_(col(Incident.kind) == "incident", col(Incident.status).not_in(NOT_OPEN),
             col(Incident.next_update_at).is_not(None)),
        and_(col(Incident.kind) == "maintenance", col(Incident.status).in_(("scheduled", "in_progress"))),
        and_(col(Incident.kind) == "incident", col(Incident.status) == "resolved",
             col(Incident.postmortem).is_(None), col(Incident.resolved_at).is_not(None)),
    )  # fmt: skip
    statement = select(Incident).where(relevant)
    if incident_id is not None:
        statement = statement.where(Incident.id == incident_id)
    incidents = list(await session.exec(statement))
    channels = await _last_update_channels(session, [i.id for i in incidents if i.id is not None])
    jobs: list[PlannedJob] = []
    for incident in incidents:
        assert incident.id is not None
        if incident.kind == "maintenance":
            jobs.extend(maintenance_jobs(settings, incident))
        elif incident.status == "resolved":
            jobs.append(postmortem_job(settings, incident))
        else:
            jobs.extend(followup_jobs(settings, incident, channels.get(incident.id, ())))
    done = await _recorded(session, [job.run_key for job in jobs])
    return sorted((job for job in jobs if job.run_key not in done), key=lambda job: (job.run_at, job.id))


async def _last_update_channels(
    session: AsyncSession, incident_ids: Sequence[int]
) -> dict[int, tuple[str, ...]]:
    """The channels each incident's latest update went to: a holding message goes to the same ones."""
    if not incident_ids:
        return {}
    latest = (
        select(func.max(IncidentUpdate.id))
        .where(col(IncidentUpdate.incident_id).in_(incident_ids))
        .group_by(col(IncidentUpdate.incident_id))
    )
    updates = await session.exec(select(IncidentUpdate).where(col(IncidentUpdate.id).in_(latest)))
    return {u.incident_id: tuple(u.channels) for u in updates}


async def _recorded(session: AsyncSession, keys: Iterable[str]) -> set[str]:
    wanted = list(keys)
    if not wanted:
        return set()
    statement = select(ScheduledRun.key).where(col(ScheduledRun.key).in_(wanted))
    return set(await session.exec(statement))
