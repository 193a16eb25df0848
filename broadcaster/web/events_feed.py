"""What changed since the caller last looked, read from the database — so it is the same on every
node: the audit log's rows (incident, maintenance, inbox, account changes), customers' new messages,
and the progress of deliveries still in flight. `GET /api/v1/events` streams it as server-sent events.

Each caller sees only what their permissions read: no inbox event without `inbox:read`, no account
event without `audit:read`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import func
from sqlalchemy import select as sa_select
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from broadcaster.auth.roles import Permission
from broadcaster.db import SessionFactory
from broadcaster.delivery import outbox
from broadcaster.models import AuditEvent, Delivery, IncidentUpdate, Message

__all__ = ["Cursor", "EventFeed", "FeedEvent"]

#: Audit actions that queue deliveries: their update is watched at once, however fast it goes out.
_PUBLISHING = frozenset({"incident.open", "incident.update", "incident.resolve", "maintenance.notice",
                         "postmortem.publish", "deliveries.requeue"})  # fmt: skip
_BATCH = 200

#: Which permission reads the audit events of each action's family, and the event name they get.
_FAMILIES: dict[str, tuple[str, Permission]] = {
    "incident": ("incident", Permission.INCIDENTS_READ),
    "maintenance": ("incident", Permission.INCIDENTS_READ),
    "postmortem": ("incident", Permission.INCIDENTS_READ),
    "rehearsal": ("incident", Permission.INCIDENTS_READ),
    "deliveries": ("incident", Permission.INCIDENTS_READ),
    "inbox": ("conversation", Permission.INBOX_READ),
    "subscribers": ("subscribers", Permission.SUBSCRIBERS_READ),
}
_ACCOUNTS = ("account", Permission.AUDIT_READ)  # user., token., login…


@dataclass(frozen=True, slots=True)
class FeedEvent:
    event: str  # incident, conversation, message, delivery, subscribers, account
    data: dict[str, object]


@dataclass(slots=True)
class Cursor:
    """Where a caller is: the last audit row and message seen (`Last-Event-ID` is `<audit>.<message>`)."""

    audit_id: int = 0
    message_id: int = 0

    def __str__(self) -> str:
        return f"{self.audit_id}.{self.message_id}"

    @classmethod
    def parse(cls, text: str) -> Cursor | None:
        audit, _, message = text.strip().partition(".")
        if not (audit.isdigit() and message.isdigit()) or len(text) > 40:
            return None
        return cls(int(audit), int(message))


@dataclass
class EventFeed:
    sessions: SessionFactory
    permissions: frozenset[Permission]
    cursor: Cursor = field(default_factory=Cursor)
    _progress: dict[int, dict[str, dict[str, int]]] = field(default_factory=dict)  # update → last counts
    _published: set[str] = field(default_factory=set)  # objects (incident:N, update:N) just published

    async def start_now(self) -> None:
        """From now on: nothing from before this call is sent."""
        async with self.sessions() as session:
            audit = (await session.exec(select(func.max(AuditEvent.id)))).one()
            message = (await session.exec(select(func.max(Message.id)))).one()
        self.cursor = Cursor(int(audit or 0), int(message or 0))

    async def changes(self) -> list[FeedEvent]:
        """Everything new since the last call, in order: changes, then messages, then progress."""
        events = await self._audited()
        if Permission.INBOX_READ in self.permissions:
            events += await self._messages()
        if Permission.INCIDENTS_READ in self.permissions:
            events += await self._deliveries()
        return events

    async def _audited(self) -> list[FeedEvent]:
        async with self.sessions() as session:
            rows = (
                await session.exec(
                    select(AuditEvent)
                    .where(col(AuditEvent.id) > self.cursor.audit_id)
                    .order_by(col(AuditEvent.id))
                    .limit(_BATCH)
                )
            ).all()
        found = []
        for row in rows:
            assert row.id is not None
            self.cursor.audit_id = row.id
            name, needed = _FAMILIES.get(row.action.partition(".")[0], _ACCOUNTS)
            if row.action in _PUBLISHING:
                self._published.add(row.object)
            if needed in self.permissions:
                found.append(FeedEvent(name, {
                    "action": row.action, "object": row.object, "summary": row.summary,
                    "actor": row.actor, "at": row.at.isoformat(),
                }))  # fmt: skip
        return found

    async def _messages(self) -> list[FeedEvent]:
        """New messages by id and conversation (not their text: the console fetches what it shows)."""
        statement = (
            sa_select(
                col(Message.id),
                col(Message.conversation_id),
                col(Message.direction),
                col(Message.channel),
                col(Message.author),
            )  # fmt: skip
            .where(col(Message.id) > self.cursor.message_id)
            .order_by(col(Message.id))
            .limit(_BATCH)
        )
        async with self.sessions() as session:
            rows = (await (await session.connection()).execute(statement)).all()
        found = []
        for message_id, conversation_id, direction, channel, author in rows:
            assert message_id is not None
            self.cursor.message_id = message_id
            found.append(FeedEvent("message", {
                "message_id": message_id, "conversation_id": conversation_id, "direction": direction,
                "channel": channel, "by": "customer" if direction == "in" else (author or "agent"),
            }))  # fmt: skip
        return found

    async def _just_published(self, session: AsyncSession) -> list[int]:
        """The updates of what was just published or requeued, even if it all went out already."""
        incidents, updates = _object_ids(self._published, "incident"), _object_ids(self._published, "update")
        self._published.clear()
        if incidents:
            latest = select(func.max(IncidentUpdate.id)).where(col(IncidentUpdate.incident_id).in_(incidents))
            latest = latest.group_by(col(IncidentUpdate.incident_id))
            updates += [u for u in (await session.exec(latest)).all() if u is not None]
        return updates

    async def _deliveries(self) -> list[FeedEvent]:
        """Each update with deliveries in flight, when its counts moved; its last event says `done`."""
        async with self.sessions() as session:
            in_flight = col(Delivery.status).in_((outbox.PENDING, outbox.SENDING))
            live = (await session.exec(select(col(Delivery.update_id)).where(in_flight).distinct())).all()
            fresh = await self._just_published(session)
            watched = sorted({u for u in live if u is not None} | set(self._progress) | set(fresh))
            found = []
            for update_id in watched[:_BATCH]:
                counts = await outbox.counts_by_channel(session, [update_id])
                if counts == self._progress.get(update_id):
                    continue
                incident_id = (
                    await session.exec(
                        select(IncidentUpdate.incident_id).where(IncidentUpdate.id == update_id)
                    )
                ).first()
                total, final = _totals(counts.values())
                found.append(FeedEvent("delivery", {
                    "update_id": update_id, "incident_id": incident_id, "channels": counts,
                    "total": total, "final": final, "done": final == total,
                    "percent": 100 if total == 0 else int(100 * final / total),
                }))  # fmt: skip
                if final == total:
                    self._progress.pop(update_id, None)
                else:
                    self._progress[update_id] = counts
        return found


def _object_ids(objects: Iterable[str], kind: str) -> list[int]:
    return [
        int(o.partition(":")[2])
        for o in objects
        if o.startswith(f"{kind}:") and o.partition(":")[2].isdigit()
    ]


def _totals(per_channel: Iterable[dict[str, int]]) -> tuple[int, int]:
    total = final = 0
    for statuses in per_channel:
        for status, n in statuses.items():
            total += n
            final += n if status in outbox.FINAL else 0
    return total, final
