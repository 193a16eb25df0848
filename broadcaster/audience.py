"""Who receives an update: subscribers of the affected components plus each channel's public post."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import select as sa_select
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from broadcaster.config import Settings
from broadcaster.models import Subscriber, Subscription

SUBSCRIBER_CHANNELS = ("email", "telegram", "push")

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
        sa_select(
            col(Subscription.id),
            col(Subscription.channel),
            col(Subscription.address),
            col(Subscription.components),
            col(Subscriber.locale),
        )
        .join(Subscriber, col(Subscriber.id) == col(Subscription.subscriber_id))
        .where(col(Subscription.active).is_(True))
        .where(col(Subscription.channel).in_(wanted))
        .order_by(col(Subscription.id))
    )
    affected = set(components)
    recipients = []
    # Five columns: past sqlmodel.select()'s typed overloads, so plain SQLAlchemy on the connection.
    rows = await (await session.connection()).execute(statement)
    for sid, channel, address, filter_, locale in rows:
        if filter_ and not affected.intersection(filter_):
            continue
        recipients.append(Recipient(channel, address, resolve_locale(locale, settings), sid))
    return recipients


async def readers_by_locale(
    session: AsyncSession, settings: Settings, channels: Iterable[str], components: Sequence[str]
) -> dict[str, int]:
    """How many subscriptions of each locale an update on `channels` about `components` reaches."""
    readers: dict[str, int] = {}
    for recipient in await subscriber_recipients(session, settings, channels, components):
        readers[recipient.locale] = readers.get(recipient.locale, 0) + 1
    return readers
