"""The inbox at a glance, for the console's overview: how many conversations are open, unassigned,
waiting for an agent."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from broadcaster.db import SessionFactory
from broadcaster.models import Conversation

__all__ = ["InboxCounts", "inbox_counts"]


@dataclass(frozen=True, slots=True)
class InboxCounts:
    open: int
    unassigned: int  # open, nobody's
    waiting: int  # open and handed to a person (an agent wrote, or the bot stepped back)


async def _open(session: AsyncSession, *where: ColumnElement[bool]) -> int:
    query = select(func.count()).select_from(Conversation).where(col(Conversation.status) == "open", *where)
    return int((await session.exec(query)).one())


async def inbox_counts(sessions: SessionFactory) -> InboxCounts:
    async with sessions() as session:
        return InboxCounts(
            await _open(session),
            await _open(session, col(Conversation.assignee) == ""),
            await _open(session, col(Conversation.handed_off).is_(True)),
        )
