"""What capture-mode channels stored instead of sending, tied back to its incident (`broadcaster captured`).

A captured message keeps its delivery's idempotency key (`outbox.parse_idempotency_key`): a
broadcast's names its update, hence its incident; an answer's names the inbox message it sent,
hence the conversation and the incident that conversation is linked to; a staff alert's nothing.

    for entry in await find_captured(session, incident_id=12, channel="email"):
        print(entry.message.target, entry.message.title, entry.parts)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import ColumnElement, false, or_
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from broadcaster.delivery.capture import PART_SEPARATOR
from broadcaster.delivery.outbox import answer_key, broadcast_key_prefix, parse_idempotency_key
from broadcaster.errors import InvalidInput, NotFound
from broadcaster.models import CapturedMessage, Conversation, Incident, IncidentUpdate, Message
from channels.registry import CHANNEL_NAMES

__all__ = ["ALERT", "ANSWER", "BROADCAST", "Captured", "captured_of_updates", "find_captured"]

BROADCAST, ANSWER, ALERT = "broadcast", "answer", "staff alert"


@dataclass(frozen=True, slots=True)
class Captured:
    """One stored message and what it belonged to (`incident_id` None: a staff alert, or unlinked)."""

    message: CapturedMessage
    what: str  # BROADCAST, ANSWER or ALERT
    incident_id: int | None = None
    incident_title: str = ""
    incident_kind: str = ""  # "incident" or "maintenance"
    update_id: int | None = None
    conversation_id: int | None = None

    @property
    def parts(self) -> list[str]:
        """The message as the channel would have sent it: one text per post, e-mail or push."""
        return self.message.body.split(PART_SEPARATOR)

    def as_dict(self) -> dict[str, object]:
        m = self.message
        return {
            "id": m.id, "channel": m.channel, "recipient": m.target, "what": self.what,
            "incident_id": self.incident_id, "incident": self.incident_title, "kind": self.incident_kind,
            "update_id": self.update_id, "conversation_id": self.conversation_id,
            "thread_ref": m.thread_ref, "title": m.title, "parts": self.parts, "html": m.html,
            "captured_at": m.created_at.isoformat(),
        }  # fmt: skip


def captured_of_updates(update_ids: Iterable[int]) -> ColumnElement[bool]:
    """A condition selecting the broadcasts captured for these updates (for a select or a delete)."""
    prefixes = [broadcast_key_prefix(update_id) for update_id in update_ids]
    if not prefixes:
        return false()
    return or_(*(col(CapturedMessage.idempotency_key).startswith(p, autoescape=True) for p in prefixes))


async def _incident_condition(session: AsyncSession, incident_id: int) -> ColumnElement[bool]:
    updates = await session.exec(select(IncidentUpdate.id).where(IncidentUpdate.incident_id == incident_id))
    answers = await session.exec(
        select(Message.id)
        .join(Conversation, col(Conversation.id) == col(Message.conversation_id))
        .where(Conversation.incident_id == incident_id, Message.direction == "out")
    )
    keys = [answer_key(message_id) for message_id in answers if message_id is not None]
    return or_(
        captured_of_updates(u for u in updates if u is not None),
        col(CapturedMessage.idempotency_key).in_(keys) if keys else false(),
    )


async def find_captured(
    session: AsyncSession, *, incident_id: int | None = None, channel: str | None = None
) -> list[Captured]:
    """Every captured message (of `incident_id`, on `channel`): newest incident first, each in order.

    Staff alerts and answers in conversations linked to no incident come last. Raises `InvalidInput`
    for an unknown channel, `NotFound` for an unknown incident.
    """
    statement = select(CapturedMessage)
    if channel is not None:
        if channel not in CHANNEL_NAMES:
            raise InvalidInput(
                f"--channel {channel}: unknown channel (choose from {', '.join(CHANNEL_NAMES)})"
            )
        statement = statement.where(CapturedMessage.channel == channel)
    if incident_id is not None:
        if await session.get(Incident, incident_id) is None:
            raise NotFound(f"no incident #{incident_id}")
        statement = statement.where(await _incident_condition(session, incident_id))
    rows = list(await session.exec(statement.order_by(col(CapturedMessage.id))))
    keys = {row.id: parse_idempotency_key(row.idempotency_key) for row in rows}
    of_update = await _update_incidents(session, {k.update_id for k in keys.values() if k.update_id})
    of_answer = await _answer_links(session, {k.message_id for k in keys.values() if k.message_id})
    incidents = await _incidents(
        session, set(of_update.values()) | {linked for _, linked in of_answer.values() if linked}
    )
    found = []
    for row in rows:
        key = keys[row.id]
        if key.update_id is not None:
            what, conversation_id, owner = BROADCAST, None, of_update.get(key.update_id)
        elif key.message_id is not None:
            what, (conversation_id, owner) = ANSWER, of_answer.get(key.message_id, (None, None))
        else:
            what, conversation_id, owner = ALERT, None, None
        incident = incidents.get(owner) if owner is not None else None
        found.append(
            Captured(row, what, update_id=key.update_id, conversation_id=conversation_id)
            if incident is None
            else Captured(
                row, what, incident.id, incident.title, incident.kind, key.update_id, conversation_id
            )
        )
    found.sort(key=lambda c: (c.incident_id is None, -(c.incident_id or 0), c.message.id or 0))
    return found


async def _update_incidents(session: AsyncSession, update_ids: set[int]) -> dict[int, int]:
    """{update id: its incident's id}."""
    if not update_ids:
        return {}
    statement = select(IncidentUpdate.id, IncidentUpdate.incident_id).where(
        col(IncidentUpdate.id).in_(update_ids)
    )
    return {update_id: incident_id for update_id, incident_id in await session.exec(statement) if update_id}


async def _answer_links(session: AsyncSession, message_ids: set[int]) -> dict[int, tuple[int, int | None]]:
    """{inbox message id: (its conversation's id, the incident that conversation is linked to)}."""
    if not message_ids:
        return {}
    statement = (
        select(Message.id, Conversation.id, Conversation.incident_id)
        .join(Conversation, col(Conversation.id) == col(Message.conversation_id))
        .where(col(Message.id).in_(message_ids))
    )
    return {
        m: (c, linked) for m, c, linked in await session.exec(statement) if m is not None and c is not None
    }


async def _incidents(session: AsyncSession, incident_ids: set[int]) -> dict[int, Incident]:
    if not incident_ids:
        return {}
    found = await session.exec(select(Incident).where(col(Incident.id).in_(incident_ids)))
    return {i.id: i for i in found if i.id is not None}
