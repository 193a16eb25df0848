"""How long customer messages are kept: `[privacy] keep_customer_messages_days` (default 365).

The scheduler deletes what customers wrote before that (their messages in conversations and the
raw webhook or poll records they arrived in); our answers and the conversations stay.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete
from sqlmodel import col

from broadcaster.db import SessionFactory, writing
from broadcaster.models import InboundRecord, Message

__all__ = ["Purged", "purge_customer_messages"]


@dataclass(frozen=True, slots=True)
class Purged:
    messages: int  # customer messages in conversations
    records: int  # raw inbound records

    def __bool__(self) -> bool:
        return bool(self.messages or self.records)


async def purge_customer_messages(sessions: SessionFactory, keep_days: int, now: datetime) -> Purged:
    """Delete, in one transaction, what customers wrote more than `keep_days` before `now`."""
    cutoff = now - timedelta(days=keep_days)
    async with sessions() as session, writing(session):
        connection = await session.connection()
        messages = await connection.execute(
            delete(Message).where(col(Message.direction) == "in", col(Message.created_at) < cutoff)
        )
        records = await connection.execute(
            delete(InboundRecord).where(col(InboundRecord.received_at) < cutoff)
        )
        await session.commit()
    return Purged(int(messages.rowcount), int(records.rowcount))
