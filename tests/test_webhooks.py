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
TELEGRAM_PAYLOADS = Path(__file__).parent / "payloads" / "telegram"
UPDATE = (TELEGRAM_PAYLOADS / "message.json").read_bytes()


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
    assert bad.status_code == 200 and bad.json() == {"received": 0, "stored": 0}  # else Telegram retries it
    not_json = await client.post("/webhooks/telegram", content=b"{", headers=headers)
    assert not_json.status_code == 400 and "JSON" in not_json.json()["detail"]
    huge = await client.post("/webhooks/telegram", content=b"x" * (1024 * 1024 + 1), headers=headers)
    assert huge.status_code == 413
    assert await stored(sessions) == []


async def test_captions_media_and_unreadable_telegram_updates_reach_the_inbox(
    client: httpx.AsyncClient, sessions: SessionFactory, caplog: pytest.LogCaptureFixture
) -> None:
    headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET, "Content-Type": "application/json"}
    answers = [
        (
            await client.post(
                "/webhooks/telegram", content=TELEGRAM_PAYLOADS.joinpath(name).read_bytes(), headers=headers
            )
        ).json()  # fmt: skip
        for name in ("photo_caption.json", "voice.json", "unreadable_chat.json")
    ]

    assert answers == [{"received": 1, "stored": 1}] * 3
    records = {r.external_id: r for r in await stored(sessions)}
    assert records["5512873340:4831"].text == "Voici l'erreur au moment de payer 😕"
    assert records["5512873340:4834"].text == "[voice message]"
    kept = records["update:815204205"]
    assert (kept.text, kept.conversation_key) == ("Le paiement ne passe toujours pas", "update:815204205")
    assert "Telegram update 815204205 unreadable: message.chat is missing" in caplog.text


APP_SECRET = "fb-app-secret"
FB_COMMENT = (Path(__file__).parent / "payloads" / "facebook" / "comment.json").read_bytes()


@pytest.fixture
async def fb_client(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(
        database_url,
        channels={
            "facebook": {"page_id": "1122334455", "app_secret": APP_SECRET, "verify_token": "verify-me"}
        },
    )
    app = create_app(settings, dispatch=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as c:
        yield c


def signed(body: bytes, secret: str = APP_SECRET) -> dict[str, str]:
    import hashlib
    import hmac

    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"X-Hub-Signature-256": f"sha256={digest}", "Content-Type": "application/json"}


async def test_facebook_subscription_handshake(fb_client: httpx.AsyncClient) -> None:
    ok = await fb_client.get("/webhooks/facebook", params={
        "hub.mode": "subscribe", "hub.verify_token": "verify-me", "hub.challenge": "1158201444"})  # fmt: skip
    assert ok.status_code == 200 and ok.text == "1158201444"
    refused = await fb_client.get("/webhooks/facebook", params={
        "hub.mode": "subscribe", "hub.verify_token": "guess", "hub.challenge": "1"})  # fmt: skip
    assert refused.status_code == 403


async def test_facebook_events_need_a_valid_signature(
    fb_client: httpx.AsyncClient, sessions: SessionFactory
) -> None:
    for headers in ({}, signed(FB_COMMENT, "another-secret"), {"X-Hub-Signature-256": "sha256=zz"}):
        response = await fb_client.post("/webhooks/facebook", content=FB_COMMENT, headers=headers)
        assert response.status_code == 403
    assert await stored(sessions) == []
    accepted = await fb_client.post("/webhooks/facebook", content=FB_COMMENT, headers=signed(FB_COMMENT))
    assert accepted.status_code == 200 and accepted.json()["stored"] == 1
    again = await fb_client.post("/webhooks/facebook", content=FB_COMMENT, headers=signed(FB_COMMENT))
    assert again.json()["stored"] == 0
    (record,) = await stored(sessions)
    assert record.channel == "facebook" and record.external_id.startswith("comment:")
    malformed = b'{"object": "page", "entry": {"changes": [{"field": "feed"}]}}'
    bad = await fb_client.post("/webhooks/facebook", content=malformed, headers=signed(malformed))
    assert bad.status_code == 400


async def test_a_facebook_batch_with_an_old_comment_and_a_broken_item_is_200_and_keeps_the_rest(
    fb_client: httpx.AsyncClient, sessions: SessionFactory
) -> None:
    body = (Path(__file__).parent / "payloads" / "facebook" / "old_comment_and_messenger.json").read_bytes()

    response = await fb_client.post("/webhooks/facebook", content=body, headers=signed(body))

    assert response.status_code == 200 and response.json() == {"received": 3, "stored": 3}
    texts = sorted(r.text for r in await stored(sessions))
    assert texts == [
        "Allô ? Le site ne répond plus",
        "Bonjour, ma carte a été débitée mais la commande n'apparaît pas.",
        "Toujours pas de confirmation de commande depuis ce matin",
    ]
