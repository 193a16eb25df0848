"""Provider webhooks: signature first, nothing stored on a bad call, duplicates stored once."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlmodel import select

from broadcaster.db import SessionFactory
from broadcaster.models import InboundRecord
from broadcaster.web import create_app
from tests.conftest import make_settings

SECRET = "s3cret-webhook-token"
UPDATE = (Path(__file__).parent / "payloads" / "telegram" / "message.json").read_bytes()


@pytest.fixture
async def client(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(database_url, channels={"telegram": {"webhook_secret": SECRET}})
    app = create_app(settings, dispatch=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as c:
        yield c


async def stored(sessions: SessionFactory) -> list[InboundRecord]:
    async with sessions() as session:
        return list(await session.exec(select(InboundRecord)))


@pytest.mark.parametrize("header", [None, "wrong-token", SECRET + "x"])
async def test_telegram_webhook_without_the_secret_is_403_and_stores_nothing(
    client: httpx.AsyncClient, sessions: SessionFactory, header: str | None
) -> None:
    headers = {"X-Telegram-Bot-Api-Secret-Token": header} if header else {}
    response = await client.post("/webhooks/telegram", content=UPDATE, headers=headers)
    assert response.status_code == 403
    assert await stored(sessions) == []


async def test_telegram_update_delivered_twice_is_stored_once(
    client: httpx.AsyncClient, sessions: SessionFactory
) -> None:
    headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET, "Content-Type": "application/json"}
    first = await client.post("/webhooks/telegram", content=UPDATE, headers=headers)
    again = await client.post("/webhooks/telegram", content=UPDATE, headers=headers)
    assert first.json() == {"received": 1, "stored": 1}
    assert again.json() == {"received": 1, "stored": 0}
    (record,) = await stored(sessions)
    update = json.loads(UPDATE)
    assert record.channel == "telegram"
    assert record.text == update["message"]["text"]
    assert record.external_id == f"{update['message']['chat']['id']}:{update['message']['message_id']}"


async def test_malformed_and_oversized_payloads_are_refused(
    client: httpx.AsyncClient, sessions: SessionFactory
) -> None:
    headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET}
    bad = await client.post("/webhooks/telegram", content=b'{"update_id": 1, "message": {"chat": 5}}',
                            headers=headers)  # fmt: skip
    assert bad.status_code == 400 and "message" in bad.json()["detail"]
    huge = await client.post("/webhooks/telegram", content=b"x" * (1024 * 1024 + 1), headers=headers)
    assert huge.status_code == 413
    assert await stored(sessions) == []
