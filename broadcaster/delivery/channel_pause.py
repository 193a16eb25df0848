"""Channels paused by their circuit breaker, as the workers report them for `broadcaster deliveries`:
"channel paused: provider unreachable since 14:02, next probe 14:03"."""

from __future__ import annotations

import os
import socket
from datetime import datetime

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from broadcaster.db import writing
from broadcaster.localtime import local_time
from broadcaster.models import ChannelPause

__all__ = ["clear", "describe", "paused", "store"]

_PROCESS = f"{socket.gethostname()}:{os.getpid()}"


async def store(session: AsyncSession, channel: str, opened_at: datetime, next_probe_at: datetime) -> None:
    """Record (or move on) the pause of `channel`, and commit."""
    async with writing(session):
        row = await session.get(ChannelPause, channel) or ChannelPause(channel=channel)
        row.opened_at, row.next_probe_at, row.process = opened_at, next_probe_at, _PROCESS
        session.add(row)
        await session.commit()


async def clear(session: AsyncSession, channel: str) -> None:
    """`channel` sends again: forget its pause, and commit."""
    async with writing(session):
        row = await session.get(ChannelPause, channel)
        if row is not None:
            await session.delete(row)
        await session.commit()


async def paused(session: AsyncSession) -> dict[str, ChannelPause]:
    """{channel: its pause} for every channel paused now."""
    return {row.channel: row for row in await session.exec(select(ChannelPause))}


def describe(pause: ChannelPause, timezone: str) -> str:
    """The operator's line, times on the brand's clock."""
    since = local_time(pause.opened_at, timezone)[-5:]
    probe = local_time(pause.next_probe_at, timezone)[-5:]
    return f"channel paused: provider unreachable since {since}, next probe {probe}"
