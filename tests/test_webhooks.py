"""Provider webhooks: signature first, nothing stored on a bad call, duplicates stored once, and one
hostile update failing only itself."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import select

from broadcaster.db import SessionFactory
from broadcaster.inbox.filing import file_pending
from broadcaster.models import InboundRecord
from broadcaster.web import create_app
from tests.conftest import make_settings
from tests.served import served

SECRET = "s3cret-webhook-token"
TELEGRAM_PAYLOADS = Path(__file__).parent / "payloads" / "telegram"
UPDATE = (TELEGRAM_PAYLOADS / "message.json").read_bytes()
JSON_HEADERS = {"X-Telegram-Bot-Api-Secret-Token": SECRET, "Content-Type": "application/json"}


@pytest.fixture
async def client(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(database_url, channels={"telegram": {"webhook_secret": SECRET}})
    app = create_app(settings, dispatch=False)
    async with served(app) as c:
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
    async with served(app) as c:
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


def update(number: int, **sender: Any) -> dict[str, Any]:
    """The recorded update as customer `number` would send it, with `sender` fields replaced."""
    data = json.loads(UPDATE)
    data["update_id"] += number
    data["message"]["message_id"] += number
    data["message"]["chat"]["id"] += number
    data["message"]["from"] |= {"id": data["message"]["chat"]["id"], **sender}
    return data


def dated(date: int) -> dict[str, Any]:
    data = update(1)
    data["message"]["date"] = date
    return data


async def test_one_hostile_update_in_a_group_commit_fails_only_itself(
    client: httpx.AsyncClient, sessions: SessionFactory
) -> None:
    hostile = {
        1: update(1, first_name="Lé\x00a"),  # NUL: PostgreSQL refuses it in text
        2: update(2, first_name="L\ud83dea"),  # a lone surrogate: SQLite cannot encode it
        3: update(3, first_name="A" * 300),  # longer than customer_name
        4: update(4, language_code="fr-x-" + "a" * 12),  # 17 characters
        5: update(5, username="u\x00" * 150),  # NUL and longer than customer_handle
    }
    plain = {n: update(n) for n in range(10, 20)}
    bodies = {n: json.dumps(u).encode() for n, u in (hostile | plain).items()}
    bodies[6] = json.dumps(update(6)).replace('"date": ', '"edit_date": NaN, "date": ').encode()
    answers = await asyncio.gather(
        *(client.post("/webhooks/telegram", content=body, headers=JSON_HEADERS) for body in bodies.values())
    )
    by_number = dict(zip(bodies, answers, strict=True))
    assert by_number[6].status_code == 400 and "message.edit_date" in by_number[6].json()["detail"]
    assert all(by_number[n].json() == {"received": 1, "stored": 1} for n in bodies if n != 6)
    by_chat = {r.conversation_key: r for r in await stored(sessions)}
    chat = json.loads(UPDATE)["message"]["chat"]["id"]
    assert set(by_chat) == {str(chat + n) for n in bodies if n != 6}
    assert by_chat[str(chat + 1)].customer_name == "Léa Durand"
    assert by_chat[str(chat + 2)].customer_name == "Lea Durand"
    assert len(by_chat[str(chat + 3)].customer_name) == 200
    assert len(by_chat[str(chat + 4)].language) == 16
    assert by_chat[str(chat + 5)].customer_handle == "u" * 150
    assert await file_pending(sessions) == len(by_chat)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"[" * 100_000 + b"]" * 100_000, "nested deeper than"),
        (json.dumps(dated(2**63)).encode(), "message.date"),
    ],
    ids=["nested-100k", "date-2^63"],
)
async def test_malformed_json_is_a_400_naming_the_field(
    client: httpx.AsyncClient, sessions: SessionFactory, body: bytes, field: str
) -> None:
    response = await client.post("/webhooks/telegram", content=body, headers=JSON_HEADERS)
    assert response.status_code == 400 and field in response.json()["detail"]
    assert await stored(sessions) == []


async def test_a_date_no_clock_can_show_is_filed_raw_not_refused(
    client: httpx.AsyncClient, sessions: SessionFactory
) -> None:
    body = json.dumps(dated(2**62)).encode()  # fits 64 bits, overflows datetime: an unreadable update
    response = await client.post("/webhooks/telegram", content=body, headers=JSON_HEADERS)
    assert response.status_code == 200
    assert [r.external_id for r in await stored(sessions)] == [f"update:{json.loads(body)['update_id']}"]
