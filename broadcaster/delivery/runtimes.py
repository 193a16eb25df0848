"""The channels a deployment drives: each enabled channel's live adapter, or capture mode when
it has no credentials, with how hard the dispatcher may drive it. No I/O."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass

from broadcaster.config import Settings
from broadcaster.db import SessionFactory
from broadcaster.delivery.capture import CaptureChannel
from channels.base import Channel
from channels.registry import SPECS

__all__ = ["ChannelRuntime", "build_channels", "close_channels", "open_channels"]

#: Captured messages are rows in our own database: a few at a time.
CAPTURE_CONCURRENCY = 4


@dataclass(frozen=True, slots=True)
class ChannelRuntime:
    """An adapter plus how the dispatcher may drive it."""

    channel: Channel
    live: bool
    concurrency: int
    rate_per_second: float


def build_channels(settings: Settings, sessions: SessionFactory) -> dict[str, ChannelRuntime]:
    """Every enabled channel: live when it has credentials, capture mode otherwise. No I/O."""
    runtimes: dict[str, ChannelRuntime] = {}
    for name, spec in SPECS.items():
        section = settings.channels.section(name)
        if not section.enabled:
            continue
        if section.live:
            live = spec.build(section)
            runtimes[name] = ChannelRuntime(live.channel, True, live.concurrency, live.rate_per_second)
        else:
            runtimes[name] = ChannelRuntime(CaptureChannel(name, sessions), False, CAPTURE_CONCURRENCY, 0.0)
    return runtimes


async def close_channels(runtimes: Mapping[str, ChannelRuntime]) -> None:
    """Close every adapter's connections (each is closed even when another fails to close)."""
    errors: list[BaseException] = []
    for runtime in runtimes.values():
        try:
            await runtime.channel.aclose()
        except Exception as exc:  # the others still close
            errors.append(exc)
    if errors:
        raise errors[0]


@asynccontextmanager
async def open_channels(
    settings: Settings, sessions: SessionFactory
) -> AsyncIterator[dict[str, ChannelRuntime]]:
    """`build_channels` for a block that uses them without a dispatcher (doctor, drill): closed after it."""
    runtimes = build_channels(settings, sessions)
    try:
        yield runtimes
    finally:
        await close_channels(runtimes)
