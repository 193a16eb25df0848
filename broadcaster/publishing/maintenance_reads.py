"""What the staff read of maintenance windows — the list, one window, the notice ladder it will
produce — shared by the CLI, the API and the console."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlmodel import col, select

from broadcaster.config import Settings
from broadcaster.db import SessionFactory
from broadcaster.models import Incident
from broadcaster.publishing.drafting import enabled_channels

__all__ = ["list_maintenance", "maintenance_dict", "notice_ladder"]


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def notice_ladder(settings: Settings, incident: Incident) -> list[tuple[datetime, list[str]]]:
    """When each rung of the notice ladder goes out for this window, earliest first."""
    assert incident.scheduled_start_at is not None
    enabled = set(enabled_channels(settings))
    rungs = []
    for hours, channels in settings.schedule.maintenance_ladder.items():
        chosen = [c for c in channels if c in enabled]
        if chosen:
            at = max(incident.scheduled_start_at - timedelta(hours=float(hours)), incident.created_at)
            rungs.append((at, chosen))
    return sorted(rungs, key=lambda rung: rung[0])


def maintenance_dict(i: Incident) -> dict[str, object]:
    return {
        "id": i.id,
        "title": i.title,
        "status": i.status,
        "components": i.components,
        "starts_at": _iso(i.scheduled_start_at),
        "ends_at": _iso(i.scheduled_end_at),
        "created_at": _iso(i.created_at),
    }


async def list_maintenance(sessions: SessionFactory, *, include_over: bool = False) -> list[Incident]:
    """Planned and running windows (with `include_over`, completed and cancelled too), soonest first."""
    statement = (
        select(Incident)
        .where(Incident.kind == "maintenance")
        .order_by(col(Incident.scheduled_start_at), col(Incident.id))
    )
    if not include_over:
        statement = statement.where(col(Incident.status).in_(("scheduled", "in_progress")))
    async with sessions() as session:
        return list(await session.exec(statement))
