"""Delete a rehearsal: an incident or maintenance whose messages only ever reached capture mode.

A drill run without credentials leaves a public-looking incident behind (status page, history,
feed). It may be deleted when nothing of it left the machine: every Delivery row of it — its
broadcasts, and the answers to customers in conversations linked to it — is captured, or waits
or failed on a channel that is in capture mode now. A row sent for real, or waiting on a live
channel, refuses the deletion.

    found = await check_rehearsal(session, settings, 12)   # what would go; NotARehearsal if refused
    deleted = await delete_rehearsal(session, settings, 12)

The deletion is one transaction: updates, renditions, deliveries, captured messages, scheduled
runs, the incident; conversations stay (customers wrote them) but are unlinked. The scheduler
follows from the plan, which is read from the incidents: the incident's jobs become stale.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, false, func, or_
from sqlalchemy import delete as sql_delete
from sqlalchemy import update as sql_update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from broadcaster.auth.audit import record
from broadcaster.config import Settings
from broadcaster.db import writing
from broadcaster.delivery import outbox
from broadcaster.delivery.captured import captured_of_updates
from broadcaster.models import (
    CapturedMessage,
    Conversation,
    Delivery,
    Incident,
    IncidentUpdate,
    Message,
    MonitorAlert,
    OpenRequest,
    Rendition,
    ScheduledRun,
    utcnow,
)
from broadcaster.publishing.component_status import refresh_component_statuses_sync
from broadcaster.publishing.drafting import PublishError
from channels.registry import CHANNEL_NAMES

__all__ = ["NotARehearsal", "Rehearsal", "check_rehearsal", "delete_rehearsal"]


class NotARehearsal(PublishError):
    """The incident reached customers for real (or is being sent right now): nothing was deleted."""


@dataclass(frozen=True, slots=True)
class Rehearsal:
    """An incident that only reached capture mode, and how much of it a deletion removes."""

    incident_id: int
    kind: str
    title: str
    updates: int
    deliveries: int
    captured: int
    scheduled_runs: int
    conversations: int  # linked to it; kept, unlinked

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def _live_channels(settings: Settings) -> set[str]:
    return {name for name in CHANNEL_NAMES if getattr(settings.channels, name).live}


async def _load(session: AsyncSession, incident_id: int) -> tuple[Incident, list[int]]:
    incident = await session.get(Incident, incident_id)
    if incident is None:
        raise PublishError(f"no incident #{incident_id}")
    updates = await session.exec(select(IncidentUpdate.id).where(IncidentUpdate.incident_id == incident_id))
    return incident, [u for u in updates if u is not None]


def _its_deliveries(incident: Incident, update_ids: list[int]) -> ColumnElement[bool]:
    """Its broadcasts, and the answers queued since it began in the conversations linked to it."""
    answers = (
        select(col(Message.id))
        .join(Conversation, col(Conversation.id) == col(Message.conversation_id))
        .where(
            Conversation.incident_id == incident.id,
            Message.direction == "out",
            col(Message.created_at) >= incident.created_at,
        )
    )
    broadcasts = col(Delivery.update_id).in_(update_ids) if update_ids else false()
    return or_(broadcasts, col(Delivery.message_id).in_(answers))


async def _refuse_if_it_went_out(
    session: AsyncSession, settings: Settings, incident: Incident, update_ids: list[int], now: datetime
) -> None:
    """Raise `NotARehearsal` saying how many messages went out for real, or wait on live channels.

    The rows are locked (PostgreSQL), so no worker claims one between this check and the deletion.
    """
    statement = select(Delivery.channel, Delivery.status, Delivery.lease_until).where(
        _its_deliveries(incident, update_ids)
    )
    live = _live_channels(settings)
    sent, waiting, in_flight = Counter[str](), Counter[str](), 0
    for channel, status, lease_until in await session.exec(statement.with_for_update()):
        if status == outbox.SENT:
            sent[channel] += 1
        elif status != outbox.CAPTURED and channel in live:
            waiting[channel] += 1
        elif status == outbox.SENDING and lease_until is not None and lease_until > now:
            in_flight += 1
    name = f"{incident.kind} #{incident.id}"
    if sent or waiting:
        told = [f"{sum(sent.values())} message(s) went out for real ({_per_channel(sent)})"] if sent else []
        if waiting:
            told.append(f"{sum(waiting.values())} wait or failed on live channels ({_per_channel(waiting)})")
        instead = "cancel it" if incident.kind == "maintenance" else "resolve it"
        raise NotARehearsal(
            f"{name} is not a rehearsal: {'; '.join(told)}. Only what reached capture-mode channels "
            f"alone can be deleted; {instead} instead"
        )
    if in_flight:
        raise NotARehearsal(f"{name}: {in_flight} message(s) are being captured right now; try again shortly")


def _per_channel(counts: Counter[str]) -> str:
    return ", ".join(f"{channel}: {n}" for channel, n in sorted(counts.items()))


async def _count(session: AsyncSession, model: type, *where: ColumnElement[bool]) -> int:
    return int((await session.exec(select(func.count()).select_from(model).where(*where))).one())


async def check_rehearsal(
    session: AsyncSession, settings: Settings, incident_id: int, now: datetime | None = None
) -> Rehearsal:
    """What deleting `incident_id` would remove; `NotARehearsal` if it reached customers. Writes nothing."""
    incident, update_ids = await _load(session, incident_id)
    await _refuse_if_it_went_out(session, settings, incident, update_ids, now or utcnow())
    found = Rehearsal(
        incident_id=incident_id,
        kind=incident.kind,
        title=incident.title,
        updates=len(update_ids),
        deliveries=await _count(session, Delivery, col(Delivery.update_id).in_(update_ids)),
        captured=await _count(session, CapturedMessage, captured_of_updates(update_ids)),
        scheduled_runs=await _count(session, ScheduledRun, col(ScheduledRun.incident_id) == incident_id),
        conversations=await _count(session, Conversation, col(Conversation.incident_id) == incident_id),
    )
    await session.rollback()  # release the row locks: this was only a look
    return found


async def delete_rehearsal(
    session: AsyncSession, settings: Settings, incident_id: int, now: datetime | None = None
) -> Rehearsal:
    """Delete `incident_id` and everything of it in one transaction (checked again first)."""
    now = now or utcnow()
    async with writing(session):
        try:
            connection = await session.connection()
            # Write first: SQLite then holds its write lock (no worker claims a row meanwhile),
            # PostgreSQL the incident's row (no update is published meanwhile); the check locks the rows.
            hold = sql_update(Incident).where(col(Incident.id) == incident_id)
            await connection.execute(hold.values(status=Incident.status))
            incident, update_ids = await _load(session, incident_id)
            await _refuse_if_it_went_out(session, settings, incident, update_ids, now)

            async def delete(model: type, where: ColumnElement[bool]) -> int:
                return int((await connection.execute(sql_delete(model).where(where))).rowcount)

            deliveries = await delete(Delivery, col(Delivery.update_id).in_(update_ids))
            captured = await delete(CapturedMessage, captured_of_updates(update_ids))
            await delete(Rendition, col(Rendition.update_id).in_(update_ids))
            updates = await delete(IncidentUpdate, col(IncidentUpdate.incident_id) == incident_id)
            runs = await delete(ScheduledRun, col(ScheduledRun.incident_id) == incident_id)
            unlink = sql_update(Conversation).where(col(Conversation.incident_id) == incident_id)
            unlinked = await connection.execute(unlink.values(incident_id=None))
            monitored = sql_update(MonitorAlert).where(col(MonitorAlert.incident_id) == incident_id)
            await connection.execute(monitored.values(incident_id=None))
            await delete(OpenRequest, col(OpenRequest.incident_id) == incident_id)
            await delete(Incident, col(Incident.id) == incident_id)
            summary = f"{incident.title}: {updates} updates, {deliveries} deliveries, {captured} captured"
            record(session, "rehearsal.delete", f"incident:{incident_id}", summary)
            await connection.run_sync(refresh_component_statuses_sync, now)  # an open rehearsal held some
            await session.commit()
        except BaseException:
            await session.rollback()
            raise
    return Rehearsal(incident_id, incident.kind, incident.title, updates, deliveries, captured, runs,
                     int(unlinked.rowcount))  # fmt: skip
