"""What the staff read of incidents — the list, one incident's timeline with its deliveries and the
customers who wrote about it — shared by the CLI, the API and the console."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlmodel import col, select

from broadcaster.db import SessionFactory
from broadcaster.delivery import outbox
from broadcaster.models import Conversation, Incident, IncidentUpdate
from broadcaster.publishing.preview_document import fallback_dict, finding_dict
from broadcaster.publishing.update_writer import Published

__all__ = [
    "IncidentTimeline",
    "incident_dict",
    "incident_timeline",
    "list_incidents",
    "published_dict",
    "timeline_dict",
    "update_dict",
]

ByChannel = dict[str, dict[str, int]]


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


@dataclass(frozen=True, slots=True)
class IncidentTimeline:
    incident: Incident
    updates: list[IncidentUpdate]
    deliveries: ByChannel  # every update's, by channel and status
    deliveries_by_update: dict[int, ByChannel] = field(default_factory=dict)
    conversations: list[int] = field(default_factory=list)  # the customers' who wrote about it


async def list_incidents(
    sessions: SessionFactory,
    *,
    include_over: bool = False,
    kind: str = "incident",
    status: str | None = None,
    limit: int = 100,
) -> list[Incident]:
    """Newest first: open ones and drafts (with `include_over`, resolved ones too), of one kind."""
    statement = select(Incident).where(Incident.kind == kind).order_by(col(Incident.id).desc()).limit(limit)
    if status is not None:
        statement = statement.where(Incident.status == status)
    elif not include_over:
        statement = statement.where(col(Incident.status).not_in(("resolved", "completed", "cancelled")))
    async with sessions() as session:
        return list(await session.exec(statement))


async def incident_timeline(sessions: SessionFactory, incident_id: int) -> IncidentTimeline | None:
    async with sessions() as session:
        incident = await session.get(Incident, incident_id)
        if incident is None:
            return None
        updates = list(
            await session.exec(
                select(IncidentUpdate)
                .where(IncidentUpdate.incident_id == incident_id)
                .order_by(col(IncidentUpdate.id))
            )
        )
        ids = [u.id for u in updates if u.id is not None]
        by_update = {update_id: await outbox.counts_by_channel(session, [update_id]) for update_id in ids}
        conversations = list(
            await session.exec(
                select(Conversation.id)
                .where(Conversation.incident_id == incident_id)
                .order_by(col(Conversation.id))
            )
        )
        total: ByChannel = {}
        for counts in by_update.values():
            for channel, statuses in counts.items():
                for status, n in statuses.items():
                    total.setdefault(channel, {})[status] = total.get(channel, {}).get(status, 0) + n
        return IncidentTimeline(
            incident, updates, total, by_update, [c for c in conversations if c is not None]
        )


def incident_dict(i: Incident) -> dict[str, object]:
    return {
        "id": i.id,
        "title": i.title,
        "title_translations": i.title_translations,
        "status": i.status,
        "impact": i.impact,
        "kind": i.kind,
        "components": i.components,
        "created_at": _iso(i.created_at),
        "resolved_at": _iso(i.resolved_at),
        "next_update_at": _iso(i.next_update_at),
        "scheduled_start_at": _iso(i.scheduled_start_at),
        "scheduled_end_at": _iso(i.scheduled_end_at),
        "compensation": i.compensation,
        "answer_conversations": i.answer_conversations,
        "holding_messages": i.holding_messages,
        "notes": i.notes,
    }


def update_dict(u: IncidentUpdate, deliveries: ByChannel | None = None) -> dict[str, object]:
    found: dict[str, object] = {
        "id": u.id,
        "kind": u.kind,
        "status": u.status,
        "messages": u.messages,
        "created_at": _iso(u.created_at),
        "eta_at": _iso(u.eta_at),
        "next_update_at": _iso(u.next_update_at),
        "channels": u.channels,
        "impact": u.impact,
        "components": u.components,
        "author": u.author,
    }
    if deliveries is not None:
        found["deliveries"] = deliveries
    return found


def timeline_dict(timeline: IncidentTimeline) -> dict[str, object]:
    return incident_dict(timeline.incident) | {
        "updates": [
            update_dict(u, timeline.deliveries_by_update.get(u.id or 0, {})) for u in timeline.updates
        ],
        "deliveries": timeline.deliveries,
        "conversations": {"count": len(timeline.conversations), "ids": timeline.conversations},
    }


def published_dict(
    published: Published, deliveries: ByChannel | dict[str, int] | None = None
) -> dict[str, object]:
    """What a publication did: its update, the deliveries queued (or their states), the findings."""
    return {
        "incident_id": published.incident.id,
        "update_id": published.update.id,
        "status": published.update.status,
        "deliveries": deliveries if deliveries is not None else published.deliveries,
        "findings": [finding_dict(f) for f in published.findings],
        "fallbacks": [fallback_dict(f) for f in published.fallbacks],
    }
