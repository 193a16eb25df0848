"""What an operator sees: `/metrics` after real broadcasts through the peers, and the log lines of
a channel's changes of state, which never hold a customer's text, address or a secret."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from broadcaster.config import Settings
from broadcaster.db import SessionFactory
from broadcaster.delivery.dispatch import Dispatcher
from broadcaster.delivery.runtimes import build_channels
from broadcaster.logs import StructuredFormatter
from broadcaster.metrics import Metrics
from broadcaster.publishing.incidents import Published
from broadcaster.web import create_app
from tests.conftest import make_settings
from tests.e2e.helpers import TOKEN, draft, open_, people, subscribe
from tests.peers.smtp import SmtpPeer, free_port
from tests.peers.telegram import TelegramPeer
from tests.served import served
from tests.staff import bearer, staff_token

pytestmark = pytest.mark.slow

WEBHOOK_SECRET = "webhook-secret-for-tests"
TELEGRAM_UPDATE = Path(__file__).parents[1] / "payloads" / "telegram" / "status_question.json"
# Hostile text in an update: markup, a log-injection attempt, an address. None of it may reach a log.
HOSTILE_FR = (
    "Paiement <b>KO</b>\nINFO broadcaster.delivery.dispatch channel resumed channel=email victime@example.org"
)
HOSTILE_EN = "Payment down\r\nERROR fake line password=hunter2 victim@example.org"


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    """Every line our loggers and the root logger write, in the text and the JSON format."""
    stream = io.StringIO()
    handlers = []
    for log_format in ("text", "json"):
        handler = logging.StreamHandler(stream)
        handler.setFormatter(StructuredFormatter(log_format))
        handlers.append(handler)
    root = logging.getLogger()
    ours = [logging.getLogger(name) for name in ("broadcaster", "channels")]
    before = [(logger.level, logger.propagate) for logger in (root, *ours)]
    root.setLevel(logging.INFO)
    for logger in ours:  # `broadcaster worker` in another test may have given them their own handler
        logger.setLevel(logging.INFO)
        logger.propagate = True
    for handler in handlers:
        root.addHandler(handler)
    try:
        yield stream
    finally:
        for handler in handlers:
            root.removeHandler(handler)
        for logger, (level, propagate) in zip((root, *ours), before, strict=True):
            logger.setLevel(level)
            logger.propagate = propagate


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(found: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


def peer_settings(
    database_url: str, smtp_port: int, telegram: TelegramPeer, *, metrics: bool = True, **dispatch: Any
) -> Settings:
    return make_settings(
        database_url,
        server={"metrics": metrics},
        dispatch=dispatch,
        channels={
            "email": {"host": "127.0.0.1", "port": smtp_port, "security": "none"},
            "telegram": {
                "token": TOKEN, "base_url": telegram.base_url, "webhook_secret": WEBHOOK_SECRET,
                "rate_per_second": 0, "per_chat_interval_seconds": 0, "channel_id": "@shop_status",
            },
        },
    )  # fmt: skip


async def scrape(
    client: httpx.AsyncClient, token: str
) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = await client.get("/metrics", headers=bearer(token))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return samples(response.text)


async def wait_until(condition: Any, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert condition()


async def open_hostile(sessions: SessionFactory, settings: Settings) -> Published:
    return await open_(sessions, settings, draft("investigating", HOSTILE_FR, HOSTILE_EN), force=True)


async def test_metrics_count_a_broadcast_the_inbox_and_the_bots_answer(
    database_url: str,
    sessions: SessionFactory,
    smtp: SmtpPeer,
    telegram: TelegramPeer,
    log_lines: io.StringIO,
) -> None:
    settings = peer_settings(database_url, smtp.port, telegram)
    token = await staff_token(sessions, "viewer")  # Prometheus's: a viewer may read the metrics
    await subscribe(sessions, settings, people(40))  # 20 addresses, 20 chats
    queued = create_app(settings, dispatch=False)
    async with served(queued, "http://t") as client:
        await open_hostile(sessions, settings)
        before = await scrape(client, token)
    assert value(before, "broadcaster_queue_depth", channel="email", status="pending") == 20
    assert (
        value(before, "broadcaster_queue_depth", channel="telegram", status="pending") == 21
    )  # + channel post

    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client,
    ):
        await wait_until(lambda: len(smtp.messages) == 20 and len(telegram.messages) == 21)
        response = await client.post(
            "/webhooks/telegram",
            content=TELEGRAM_UPDATE.read_bytes(),
            headers={"X-Telegram-Bot-Api-Secret-Token": WEBHOOK_SECRET, "Content-Type": "application/json"},
        )
        assert response.status_code == 200
        await wait_until(lambda: len(telegram.messages) == 22)  # the bot's answer
        found: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}

        async def settled() -> bool:
            found.update(await scrape(client, token))
            return value(found, "broadcaster_deliveries_total", channel="telegram", outcome="sent") == 22

        deadline = time.monotonic() + 10
        while not await settled() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
    assert value(found, "broadcaster_deliveries_total", channel="email", outcome="sent") == 20
    assert value(found, "broadcaster_deliveries_total", channel="telegram", outcome="sent") == 22
    assert value(found, "broadcaster_send_seconds_count", channel="email") == 20
    assert value(found, "broadcaster_send_seconds_count", channel="telegram") == 22
    assert value(found, "broadcaster_queue_depth", channel="email", status="pending") == 0
    assert value(found, "broadcaster_inbound_filed_total") == 1
    assert value(found, "broadcaster_bot_answer_seconds_count") == 1
    assert value(found, "broadcaster_rate_limited_total", channel="telegram") == 0
    logged = log_lines.getvalue()
    assert " channel progress channel=telegram " in logged
    for secret in (
        "karim.b@example.net",
        "en panne",
        "5512873391",
        "Payment down",
        token,
        WEBHOOK_SECRET,
    ):
        assert secret not in logged


async def test_metrics_is_off_by_default_and_needs_the_staff_token(
    database_url: str, sessions: SessionFactory, smtp: SmtpPeer, telegram: TelegramPeer
) -> None:
    settings = peer_settings(database_url, smtp.port, telegram)
    token = await staff_token(sessions, "viewer")
    off = peer_settings(database_url, smtp.port, telegram, metrics=False)
    for app, headers, status in [
        (create_app(off, dispatch=False), bearer(token), 404),
        (create_app(settings, dispatch=False), {}, 401),
        (create_app(settings, dispatch=False), {"Authorization": "Bearer wrong"}, 401),
    ]:
        async with served(app, "http://t") as client:
            response = await client.get("/metrics", headers=headers)
        assert response.status_code == status
        assert "broadcaster_" not in response.text


async def deliver_with(settings: Settings, sessions: SessionFactory, published: Published) -> Metrics:
    runtimes = build_channels(settings, sessions)
    dispatcher = Dispatcher(sessions, runtimes, settings.dispatch, settings.server.public_base_url)
    try:
        assert published.update.id is not None
        await dispatcher.deliver([published.update.id], timeout=60, retry_horizon=30)
    finally:
        for runtime in runtimes.values():
            await runtime.channel.aclose()
    return dispatcher.metrics


async def test_a_429_pauses_the_channel_and_dead_rows_are_logged_without_customer_data(
    database_url: str, sessions: SessionFactory, telegram: TelegramPeer, log_lines: io.StringIO
) -> None:
    closed_port = free_port()  # nothing listens: every SMTP connection is refused
    settings = peer_settings(database_url, closed_port, telegram, max_attempts=1)
    subscribers = people(8)
    await subscribe(sessions, settings, subscribers)
    telegram.rate_limit_next(1, retry_after=1)
    metrics = await deliver_with(settings, sessions, await open_hostile(sessions, settings))

    found = samples(generate_latest(metrics.registry).decode())
    assert value(found, "broadcaster_rate_limited_total", channel="telegram") == 1
    assert value(found, "broadcaster_deliveries_total", channel="telegram", outcome="sent") == 5
    assert value(found, "broadcaster_deliveries_total", channel="telegram", outcome="deferred") == 1
    assert value(found, "broadcaster_deliveries_total", channel="email", outcome="dead") == 4
    text = log_lines.getvalue()
    lines = text.splitlines()
    paused = [line for line in lines if " channel paused " in line]
    assert len(paused) == 1 and "channel=telegram reason=rate_limited retry_after=1" in paused[0]
    assert "until=20" in paused[0]
    resumed = [line for line in lines if " channel resumed channel=telegram paused_until=20" in line]
    assert len(resumed) == 1 and lines.index(resumed[0]) > lines.index(paused[0])
    assert any("deliveries dead channel=email count=4 reason=unavailable" in line for line in lines)
    events = [json.loads(line) for line in lines if line.startswith("{")]
    assert {
        "event": "deliveries dead",
        "channel": "email",
        "count": 4,
        "reason": "unavailable",
    }.items() <= next(e for e in events if e["event"] == "deliveries dead").items()
    assert any(e["event"] == "channel progress" and e["channel"] == "telegram" for e in events)
    for secret in (
        "victime@example.org",
        "victim@example.org",
        "hunter2",
        "<b>KO</b>",
        "Payment down",
        TOKEN,
    ):
        assert secret not in text
    for subscriber in subscribers:
        assert (subscriber.email or subscriber.telegram_chat_id or "?") not in text
