"""What the scheduler will do, and what it missed: `broadcaster schedule` and `/api/v1/schedule`."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlmodel import col, select

from broadcaster.config import Settings
from broadcaster.db import SessionFactory
from broadcaster.models import ScheduledRun
from broadcaster.schedule.plan import PlannedJob, plan

__all__ = ["MISSED_SHOWN_DAYS", "describe", "schedule_report"]

MISSED_SHOWN_DAYS = 7

_WHAT = {
    "reminder": "staff reminder: next update due",
    "holding": "holding message",
    "notice": "maintenance notice",
    "start": "maintenance starts",
    "end": "maintenance ends",
    "postmortem": "postmortem reminder",
}


def describe(job: PlannedJob) -> str:
    """A job in words: "maintenance notice (72 h before)"."""
    if job.kind == "notice":
        return f"{_WHAT['notice']} ({job.id.rsplit(':', 1)[1]} h before)"
    return _WHAT[job.kind]


async def schedule_report(
    sessions: SessionFactory, settings: Settings, now: datetime
) -> dict[str, list[dict[str, object]]]:
    """Pending jobs by time (what, when, incident, channels), and the runs missed in the last days."""
    since = now - timedelta(days=MISSED_SHOWN_DAYS)
    async with sessions() as session:
        jobs = await plan(session, settings)
        missed = list(
            await session.exec(
                select(ScheduledRun)
                .where(ScheduledRun.outcome == "missed", col(ScheduledRun.ran_at) >= since)
                .order_by(col(ScheduledRun.due_at))
            )
        )
    return {
        "pending": [{**job.as_dict(), "what": describe(job), "overdue": job.run_at <= now} for job in jobs],
        "missed": [
            {
                "key": run.key,
                "kind": run.kind,
                "incident_id": run.incident_id,
                "due_at": run.due_at.isoformat(),
                "reported_at": run.ran_at.isoformat(),
                "detail": run.detail,
            }
            for run in missed
        ],  # fmt: skip
    }
