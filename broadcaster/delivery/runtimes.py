"""The channels a deployment drives: each enabled channel's live adapter, or capture mode when
it has no credentials, with how hard the dispatcher may drive it. No I/O."""

from __future__ import annotations

from dataclasses import dataclass

from broadcaster.config import (
    BlogSettings,
    EmailSettings,
    FacebookSettings,
    PushSettings,
    Settings,
    TelegramSettings,
    TwitterSettings,
)
from broadcaster.db import SessionFactory
from broadcaster.delivery.capture import CaptureChannel
from channels.base import Channel
from channels.registry import CHANNEL_NAMES

__all__ = ["ChannelRuntime", "build_channels"]


@dataclass(frozen=True, slots=True)
class ChannelRuntime:
    """An adapter plus how the dispatcher may drive it."""

    channel: Channel
    live: bool
    concurrency: int
    rate_per_second: float


def _live(name: str, section: object) -> ChannelRuntime:
    """The live adapter of `name` with how hard the dispatcher may drive it."""
    from channels.blog.adapter import BlogChannel
    from channels.email.adapter import EmailChannel
    from channels.facebook.adapter import FacebookChannel
    from channels.push.adapter import PushChannel
    from channels.telegram.adapter import TelegramChannel
    from channels.twitter.adapter import TwitterChannel

    match section:
        case EmailSettings():
            return ChannelRuntime(EmailChannel(section), True, section.pool_size, section.rate_per_second)
        case TelegramSettings():
            return ChannelRuntime(
                TelegramChannel(section), True, section.concurrency, section.rate_per_second
            )
        case TwitterSettings():  # the posting budget (100 / 15 min) is kept by the adapter
            return ChannelRuntime(TwitterChannel(section), True, 2, 0.0)
        case FacebookSettings():
            return ChannelRuntime(FacebookChannel(section), True, 2, section.rate_per_second)
        case PushSettings():
            return ChannelRuntime(PushChannel(section), True, 32, section.rate_per_second)
        case BlogSettings():
            return ChannelRuntime(BlogChannel(section), True, 1, 0.0)
    raise ValueError(f"no live adapter for channel {name!r}")


def build_channels(settings: Settings, sessions: SessionFactory) -> dict[str, ChannelRuntime]:
    """Every enabled channel: live when it has credentials, capture mode otherwise. No I/O."""
    runtimes: dict[str, ChannelRuntime] = {}
    for name in CHANNEL_NAMES:
        section = getattr(settings.channels, name)
        if not section.enabled:
            continue
        runtimes[name] = (
            _live(name, section)
            if section.live
            else ChannelRuntime(CaptureChannel(name, sessions), False, 4, 0.0)
        )
    return runtimes
