"""Building blocks of end-to-end tests: live settings against the peers, subscribers, publishing."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from broadcaster.compose.render import Composer
from broadcaster.config import Settings
from broadcaster.db import SessionFactory
from broadcaster.delivery.dispatch import Dispatcher
from broadcaster.delivery.runtimes import build_channels
from broadcaster.delivery.subscribers import NewSubscriber, import_subscribers
from broadcaster.publishing.incidents import (
    Published,
    UpdateDraft,
    open_incident,
    post_update,
    resolve_incident,
)
from tests.conftest import make_settings
from tests.peers.smtp import SmtpPeer
from tests.peers.telegram import TelegramPeer

TOKEN = "123:TEST"


def live_settings(
    database_url: str, smtp: SmtpPeer | None, telegram: TelegramPeer | None, **dispatch: Any
) -> Settings:
    channels: dict[str, Any] = {}
    if smtp is not None:
        channels["email"] = {"host": smtp.host, "port": smtp.port, "security": "none", "pool_size": 4}
    if telegram is not None:
        channels["telegram"] = {
            "token": TOKEN,
            "base_url": telegram.base_url,
            "rate_per_second": 0,
            "per_chat_interval_seconds": 0,
            "channel_id": "@shop_status",
        }
    return make_settings(database_url, channels=channels, dispatch=dispatch)


def people(count: int, *, offset: int = 0) -> list[NewSubscriber]:
    """Half French, half English; alternately e-mail and Telegram."""
    result = []
    for i in range(offset, offset + count):
        locale = "fr" if i % 2 == 0 else "en"
        if i % 4 < 2:
            result.append(NewSubscriber(email=f"client{i}@example.com", locale=locale, line=i + 2))
        else:
            result.append(NewSubscriber(telegram_chat_id=str(100_000 + i), locale=locale, line=i + 2))
    return result


async def subscribe(sessions: SessionFactory, settings: Settings, entries: Sequence[NewSubscriber]) -> None:
    async with sessions() as session:
        await import_subscribers(session, settings, entries)


def draft(status: str, fr: str, en: str, **extra: Any) -> UpdateDraft:
    return UpdateDraft(status=status, message=fr, translations={"en": en}, **extra)


async def deliver(
    sessions: SessionFactory, settings: Settings, published: Published, timeout: float = 60.0
) -> dict[str, dict[str, int]]:
    runtimes = build_channels(settings, sessions)
    dispatcher = Dispatcher(sessions, runtimes, settings.dispatch, settings.server.public_base_url)
    try:
        assert published.update.id is not None
        return await dispatcher.deliver([published.update.id], timeout=timeout, retry_horizon=30)
    finally:
        for runtime in runtimes.values():
            await runtime.channel.aclose()


async def open_(sessions: SessionFactory, settings: Settings, update: UpdateDraft, **kw: Any) -> Published:
    async with sessions() as session:
        return await open_incident(
            session,
            settings,
            Composer(default_locale="fr"),
            title=kw.pop("title", "Paiement indisponible"),
            impact=kw.pop("impact", "major"),
            components=kw.pop("components", ["checkout"]),
            draft=update,
            **kw,
        )


async def follow_up(
    sessions: SessionFactory, settings: Settings, incident_id: int, update: UpdateDraft
) -> Published:
    async with sessions() as session:
        return await post_update(session, settings, Composer(default_locale="fr"), incident_id, update)


async def resolve(
    sessions: SessionFactory, settings: Settings, incident_id: int, update: UpdateDraft
) -> Published:
    async with sessions() as session:
        return await resolve_incident(session, settings, Composer(default_locale="fr"), incident_id, update)
