"""Who receives an update: subscribers of the affected components plus each channel's public post."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, exists, func, or_, select
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from broadcaster.config import Settings
from broadcaster.models import Subscriber, Subscription
from channels.registry import SPECS

__all__ = [
    "PUBLIC_TARGETS",
    "Recipient",
    "SUBSCRIBER_CHANNELS",
    "audience_by_channel",
    "json_elements",
    "public_recipients",
    "readers_by_locale",
    "resolve_locale",
    "subscriber_filter",
    "subscriber_locales",
]

#: Channels people subscribe on, each with an address of their own.
SUBSCRIBER_CHANNELS = tuple(name for name, spec in SPECS.items() if spec.subscribers)

#: The single public target of channels that post once for everybody.
PUBLIC_TARGETS = {name: spec.public_target for name, spec in SPECS.items() if spec.public_target}


@dataclass(frozen=True, slots=True)
class Recipient:
    """A channel's public target (subscribers' rows are written in SQL, see `subscriber_filter`)."""

    channel: str
    target: str
    locale: str


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


def subscriber_filter(dialect: str, channel: str, components: Sequence[str]) -> list[ColumnElement[bool]]:
    """The active subscriptions on `channel` whose component filter is empty or meets `components`.

    In SQL, so a broadcast's audience never passes through Python one subscription at a time.
    """
    listed = col(Subscription.components)
    elements = json_elements(dialect, listed).table_valued("value")
    meets = exists(select(1).select_from(elements).where(elements.c.value.in_(list(components))))
    return [
        col(Subscription.active).is_(True),
        col(Subscription.channel) == channel,
        or_(func.json_array_length(listed) == 0, meets),
    ]


def json_elements(dialect: str, array: Any) -> Any:
    """The function listing a JSON array's elements as text: `json_each` on SQLite."""
    return func.json_array_elements_text(array) if dialect == "postgresql" else func.json_each(array)


async def subscriber_locales(
    session: AsyncSession, conditions: Sequence[ColumnElement[bool]]
) -> dict[str, int]:
    """How many subscriptions meeting `conditions` each subscriber locale (as stored) has."""
    statement = (
        select(col(Subscriber.locale), func.count())
        .select_from(Subscription)
        .join(Subscriber, col(Subscriber.id) == col(Subscription.subscriber_id))
        .where(*conditions)
        .group_by(col(Subscriber.locale))
    )
    rows = await (await session.connection()).execute(statement)
    return {locale: n for locale, n in rows}


async def readers_by_locale(
    session: AsyncSession, settings: Settings, channels: Iterable[str], components: Sequence[str]
) -> dict[str, int]:
    """How many subscriptions of each locale an update on `channels` about `components` reaches."""
    dialect = session.get_bind().dialect.name
    readers: dict[str, int] = {}
    for channel in [c for c in channels if c in SUBSCRIBER_CHANNELS]:
        conditions = subscriber_filter(dialect, channel, components)
        for stored, n in (await subscriber_locales(session, conditions)).items():
            locale = resolve_locale(stored, settings)
            readers[locale] = readers.get(locale, 0) + n
    return readers


async def audience_by_channel(
    session: AsyncSession, settings: Settings, channels: Iterable[str], components: Sequence[str]
) -> dict[str, int]:
    """How many messages an update on `channels` about `components` sends on each: the subscribers
    reached there, plus the channel's public post (an X post, the Facebook page, the blog…)."""
    chosen = list(channels)
    dialect = session.get_bind().dialect.name
    counts = {channel: 0 for channel in chosen}
    for channel in [c for c in chosen if c in SUBSCRIBER_CHANNELS]:
        counts[channel] = sum(
            (await subscriber_locales(session, subscriber_filter(dialect, channel, components))).values()
        )
    for recipient in public_recipients(settings, chosen):
        counts[recipient.channel] += 1
    return counts
