"""Who receives an update: subscribers of the affected components plus each channel's public post."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from broadcaster.config import Settings
from broadcaster.models import Subscriber, Subscription

SUBSCRIBER_CHANNELS = ("email", "telegram")

#: The single public target of channels that post once for everybody.
PUBLIC_TARGETS = {
    "twitter": "timeline",
    "facebook": "page",
    "push": "topic:all",
    "blog": "incidents",
}


@dataclass(frozen=True, slots=True)
class Recipient:
    channel: str
    target: str
    locale: str
    subscription_id: int | None = None


def resolve_locale(requested: str, settings: Settings) -> str:
    """Fallback chain fr_CA → fr → the brand's default locale."""
    supported = settings.brand.locales
    candidates = [requested, requested.replace("-", "_").split("_")[0].lower()]
    for candidate in candidates:
        if candidate in supported:
            return candidate
    return settings.brand.default_locale


def public_recipients(settings: Settings, channels: Iterable[str]) -> list[Recipient]:
    locale = settings.brand.default_locale
    recipients = [Recipient(c, PUBLIC_TARGETS[c], locale) for c in channels if c in PUBLIC_TARGETS]
    channel_id = settings.channels.telegram.channel_id
    if channel_id and "telegram" in channels:
        recipients.append(Recipient("telegram", channel_id, locale))
    return recipients


async def subscriber_recipients(
    session: AsyncSession, settings: Settings, channels: Iterable[str], components: Sequence[str]
) -> list[Recipient]:
    """Active subscriptions on `channels` whose component filter is empty or meets `components`."""
    wanted = [c for c in channels if c in SUBSCRIBER_CHANNELS]
    if not wanted:
        return []
    statement = (
        select(
            Subscription.id,
            Subscription.channel,
            Subscription.address,
            Subscription.components,
            Subscriber.locale,
        )
        .join(Subscriber, Subscriber.id == Subscription.subscriber_id)  # type: ignore[arg-type]
        .where(Subscription.active == True)  # noqa: E712
        .where(Subscription.channel.in_(wanted))  # type: ignore[attr-defined]
        .order_by(Subscription.id)
    )
    affected = set(components)
    recipients = []
    for sid, channel, address, filter_, locale in await session.exec(statement):
        if filter_ and not affected.intersection(filter_):
            continue
        recipients.append(Recipient(channel, address, resolve_locale(locale, settings), sid))
    return recipients
