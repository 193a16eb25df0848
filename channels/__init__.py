"""Channel adapters, registered in one dict; `build_channels` picks live or capture per channel."""

from __future__ import annotations

from dataclasses import dataclass

from broadcaster.config import Settings
from broadcaster.db import SessionFactory
from channels.base import (
    Capabilities,
    Channel,
    CheckResult,
    DeliveryError,
    InboundMessage,
    RateLimited,
    Rejected,
    SendResult,
    Target,
    Unauthorized,
    Unavailable,
)
from channels.capabilities import CAPABILITIES, CHANNEL_NAMES
from channels.capture import CaptureChannel

__all__ = [
    "CAPABILITIES",
    "CHANNEL_NAMES",
    "Capabilities",
    "CaptureChannel",
    "Channel",
    "ChannelRuntime",
    "CheckResult",
    "DeliveryError",
    "InboundMessage",
    "RateLimited",
    "Rejected",
    "SendResult",
    "Target",
    "Unauthorized",
    "Unavailable",
    "build_channels",
]


@dataclass(frozen=True, slots=True)
class ChannelRuntime:
    """An adapter plus how the dispatcher may drive it."""

    channel: Channel
    live: bool
    concurrency: int
    rate_per_second: float


def build_channels(settings: Settings, sessions: SessionFactory) -> dict[str, ChannelRuntime]:
    """Every enabled channel: live when it has credentials, capture mode otherwise. No I/O."""
    from channels.blog import BlogChannel
    from channels.email import EmailChannel
    from channels.facebook import FacebookChannel
    from channels.push import PushChannel
    from channels.telegram import TelegramChannel
    from channels.twitter import TwitterChannel

    config = settings.channels
    runtimes: dict[str, ChannelRuntime] = {}
    if config.email.enabled:
        email = config.email
        runtimes["email"] = (
            ChannelRuntime(EmailChannel(email), True, email.pool_size, email.rate_per_second)
            if email.live
            else ChannelRuntime(CaptureChannel("email", sessions), False, 4, 0.0)
        )
    if config.telegram.enabled:
        telegram = config.telegram
        runtimes["telegram"] = (
            ChannelRuntime(TelegramChannel(telegram), True, telegram.concurrency, telegram.rate_per_second)
            if telegram.live
            else ChannelRuntime(CaptureChannel("telegram", sessions), False, 4, 0.0)
        )
    if config.facebook.enabled:
        facebook = config.facebook
        runtimes["facebook"] = (
            ChannelRuntime(FacebookChannel(facebook), True, 2, facebook.rate_per_second)
            if facebook.live
            else ChannelRuntime(CaptureChannel("facebook", sessions), False, 2, 0.0)
        )
    if config.push.enabled:
        push = config.push
        runtimes["push"] = (
            ChannelRuntime(PushChannel(push), True, 32, push.rate_per_second)
            if push.live
            else ChannelRuntime(CaptureChannel("push", sessions), False, 2, 0.0)
        )
    if config.blog.enabled:
        blog = config.blog
        runtimes["blog"] = (
            ChannelRuntime(BlogChannel(blog), True, 1, 0.0)
            if blog.live
            else ChannelRuntime(CaptureChannel("blog", sessions), False, 1, 0.0)
        )
    if config.twitter.enabled:
        runtimes["twitter"] = (
            ChannelRuntime(
                TwitterChannel(config.twitter), True, 2, 0.0
            )  # the posting budget is in the adapter
            if config.twitter.live
            else ChannelRuntime(CaptureChannel("twitter", sessions), False, 2, 0.0)
        )
    return runtimes
