"""Replies to a drill e-mail: recognised on the inbound path and recorded on the drill's row.

A drill e-mail's Reply-To is `reply+0.<token>@<reply_domain>`: update 0 is no update (row ids
start at 1) and the token is the drill run's `reply_token`. The SMTP listener and the IMAP poller
accept that address while a drill run has that token (`drill_address_exists`); `take_drill_replies`
then records the reply as the drill's round trip instead of storing it for the inbox, so it never
becomes a conversation, never reaches the status bot, the spike detector or the metrics.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import update
from sqlmodel import col, select

from broadcaster.db import SessionFactory, writing
from broadcaster.models import DrillRun, utcnow
from channels.base import InboundMessage

__all__ = ["DRILL_UPDATE_ID", "drill_address_exists", "is_drill_reply", "take_drill_replies"]

#: The update id of a drill e-mail's reply address: no incident update has it.
DRILL_UPDATE_ID = 0


def is_drill_reply(message: InboundMessage) -> bool:
    """An e-mail sent to a drill's reply address (`reply+0.<token>@…`)."""
    return message.channel == "email" and message.raw.get("update_id") == DRILL_UPDATE_ID


async def drill_address_exists(sessions: SessionFactory, token: str) -> bool:
    """Whether a drill run (running or finished) gave out `reply+0.<token>@`."""
    async with sessions() as session:
        found = await session.exec(select(col(DrillRun.id)).where(DrillRun.reply_token == token).limit(1))
        return found.first() is not None


async def take_drill_replies(
    sessions: SessionFactory, messages: Sequence[InboundMessage]
) -> Sequence[InboundMessage]:
    """Record the drill replies among `messages` on their runs (the first reply wins); return the rest.

    Costs nothing when there is none (every webhook call passes here).
    """
    if not any(is_drill_reply(m) for m in messages):
        return messages
    async with sessions() as session, writing(session):
        for message in messages:
            if is_drill_reply(message):
                await session.exec(
                    update(DrillRun)
                    .where(col(DrillRun.reply_token) == str(message.raw.get("token", "")))
                    .where(col(DrillRun.replied_at).is_(None))
                    .values(replied_at=utcnow(), reply_from=message.customer_handle[:200])
                )
        await session.commit()
    return [m for m in messages if not is_drill_reply(m)]
