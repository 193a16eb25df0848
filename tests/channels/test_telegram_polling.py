"""Telegram getUpdates long polling against the fake Bot API over real HTTP (tests/peers/telegram.py)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from sqlmodel import select

from broadcaster.db import SessionFactory
from broadcaster.inbox.inbound import Poller, load_cursor
from broadcaster.models import InboundRecord
from channels.base import Rejected, Unauthorized, Unavailable
from channels.telegram.polling import ALLOWED_UPDATES, TelegramUpdates
from channels.telegram.settings import TelegramSettings
from tests.peers.telegram import TelegramPeer

TOKEN = "123:TEST"
BOUND = 20.0  # seconds: an upper bound for one poll, never an expectation about speed


def settings_for(peer: TelegramPeer, token: str = TOKEN, long_poll: int = 0) -> TelegramSettings:
    return TelegramSettings(
        token=SecretStr(token),
        base_url=peer.base_url,
        timeout_seconds=5.0,
        polling_timeout_seconds=long_poll,
    )


@pytest.fixture(scope="module")
def running_peer() -> Iterator[TelegramPeer]:
    with TelegramPeer(valid_tokens={TOKEN}) as running:
        yield running


@pytest.fixture
def peer(running_peer: TelegramPeer) -> TelegramPeer:
    running_peer.reset()
    return running_peer


@pytest.fixture
async def updates(peer: TelegramPeer) -> AsyncIterator[TelegramUpdates]:
    polling = TelegramUpdates(settings_for(peer))
    yield polling
    await polling.aclose()


async def test_queued_updates_come_back_in_order_and_the_offset_acknowledges_them(
    peer: TelegramPeer, updates: TelegramUpdates
) -> None:
    peer.queue_message(1001, "Le site est en panne ?", username="amelie_durand", language_code="fr")
    peer.queue_message(1002, "Paiement refusé")
    last = peer.queue_message(1001, "Le site est en panne depuis 10 h ?", kind="edited_message")

    messages, cursor = await updates.poll("")
    again, same = await updates.poll(cursor)

    assert [(m.conversation_key, m.text) for m in messages] == [
        ("1001", "Le site est en panne ?"),
        ("1002", "Paiement refusé"),
        ("1001", "Le site est en panne depuis 10 h ?"),
    ]
    assert messages[0].customer_handle == "amelie_durand" and messages[0].language == "fr"
    assert messages[0].external_id == "1001:1" and messages[2].external_id == "1001:2"
    assert cursor == str(last + 1)
    assert (again, same) == ([], cursor)
    calls = peer.get_updates_calls
    assert [c["offset"] for c in calls] == [0, last + 1]
    assert all(c["allowed_updates"] == ALLOWED_UPDATES for c in calls)


async def test_a_long_poll_returns_a_message_that_arrives_while_it_waits(peer: TelegramPeer) -> None:
    polling = TelegramUpdates(settings_for(peer, long_poll=8))
    try:
        waiting = asyncio.create_task(polling.poll(""))
        update_id = peer.queue_message(1003, "Vous êtes là ?")
        messages, cursor = await asyncio.wait_for(waiting, BOUND)
    finally:
        await polling.aclose()

    assert [m.text for m in messages] == ["Vous êtes là ?"]
    assert cursor == str(update_id + 1)
    assert peer.get_updates_calls[-1]["timeout"] == 8


async def test_updates_the_parser_ignores_still_move_the_cursor(
    peer: TelegramPeer, updates: TelegramUpdates
) -> None:
    peer.queue_message(1004, "I am a bot", is_bot=True)
    last = peer.queue_message(-1001234567890, "Message de groupe")  # a group message is kept
    messages, cursor = await updates.poll("")

    assert [m.conversation_key for m in messages] == ["-1001234567890"]
    assert cursor == str(last + 1)


async def test_a_webhook_makes_getupdates_a_clear_error_and_stays_set(
    peer: TelegramPeer, updates: TelegramUpdates
) -> None:
    peer.webhook_url = "https://status.shop.example/webhooks/telegram"
    peer.queue_message(1005, "Bonjour")

    with pytest.raises(Unauthorized) as caught:
        await updates.poll("")
    check = await updates.check()

    reason = caught.value.reason
    assert "webhook is set" in reason and "deleteWebhook" in reason and "--telegram-polling" in reason
    assert TOKEN not in reason
    assert not check.ok and "deleteWebhook" in check.detail
    assert peer.webhook_url == "https://status.shop.example/webhooks/telegram"  # never deleted for you


async def test_check_says_polling_can_be_used_without_a_webhook(updates: TelegramUpdates) -> None:
    check = await updates.check()

    assert check.ok and "@shop_status_bot" in check.detail


async def test_a_refused_token_is_unauthorized_and_never_shown(
    peer: TelegramPeer, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = "999:NOT-OUR-TOKEN"
    polling = TelegramUpdates(settings_for(peer, token=wrong))
    caplog.set_level(logging.DEBUG)
    try:
        with pytest.raises(Unauthorized, match="channels.telegram.token") as caught:
            await polling.poll("")
    finally:
        await polling.aclose()

    for text in (str(caught.value), caplog.text, repr(polling)):
        assert wrong not in text


async def test_a_gateway_down_is_unavailable(peer: TelegramPeer, updates: TelegramUpdates) -> None:
    peer.down = True

    with pytest.raises(Unavailable, match="Telegram unreachable"):
        await updates.poll("")


async def test_a_cursor_that_is_no_offset_is_rejected(updates: TelegramUpdates) -> None:
    with pytest.raises(Rejected, match="not an update offset"):
        await updates.poll("yesterday")


async def stored(sessions: SessionFactory) -> list[InboundRecord]:
    async with sessions() as session:
        return list(await session.exec(select(InboundRecord)))


async def test_the_poller_stores_updates_once_and_keeps_the_offset(
    sessions: SessionFactory, peer: TelegramPeer
) -> None:
    peer.queue_message(1006, "Commande 10452 bloquée")
    last = peer.queue_message(1007, "Toujours en panne ?")
    first = TelegramUpdates(settings_for(peer))
    try:
        poller = Poller(sessions, {"telegram:updates": first.poll}, interval=1)
        assert await poller.poll_once() == 2
        assert await poller.poll_once() == 0
    finally:
        await first.aclose()
    assert await load_cursor(sessions, "telegram:updates") == str(last + 1)

    peer.queue_message(1006, "Merci, ça remarche")
    restarted = TelegramUpdates(settings_for(peer))  # a new process: only the database remembers
    try:
        assert await Poller(sessions, {"telegram:updates": restarted.poll}, interval=1).poll_once() == 1
    finally:
        await restarted.aclose()

    records = await stored(sessions)
    assert sorted(r.text for r in records) == [
        "Commande 10452 bloquée",
        "Merci, ça remarche",
        "Toujours en panne ?",
    ]
    assert {r.channel for r in records} == {"telegram"}
    assert peer.get_updates_calls[-1]["offset"] == last + 1  # the restart asked from the saved offset


# ----- one update never blocks the others (recorded shapes under tests/payloads/telegram/) ---------

PAYLOADS = Path(__file__).parent.parent / "payloads" / "telegram"


def recorded(name: str) -> dict[str, Any]:
    update: dict[str, Any] = json.loads((PAYLOADS / name).read_text())
    return update


async def test_shapes_ptb_cannot_decode_are_read_and_polling_goes_on(
    peer: TelegramPeer, updates: TelegramUpdates
) -> None:
    peer.queue_update(recorded("update_without_is_bot.json"))  # PTB's User needs is_bot
    peer.queue_update(recorded("sticker.json"))  # PTB's Sticker needs type, is_animated, is_video
    last = peer.queue_message(1010, "Et maintenant ?")

    messages, cursor = await asyncio.wait_for(updates.poll(""), BOUND)
    again, same = await asyncio.wait_for(updates.poll(cursor), BOUND)

    assert [m.text for m in messages] == [
        "Bonjour, ma commande 10511 est partie ?",
        "[sticker]",
        "Et maintenant ?",
    ]
    assert messages[0].customer_handle == "lucas_b" and messages[0].external_id == "6120394857:4830"
    assert cursor == str(last + 1) and (again, same) == ([], cursor)


async def test_captions_and_media_only_messages_are_filed_as_text(
    peer: TelegramPeer, updates: TelegramUpdates
) -> None:
    for name in ("photo_caption.json", "document_caption.json", "sticker.json", "voice.json"):
        peer.queue_update(recorded(name))

    messages, _ = await asyncio.wait_for(updates.poll(""), BOUND)

    assert [m.text for m in messages] == [
        "Voici l'erreur au moment de payer 😕",
        "J'ai été débitée deux fois, voir le relevé",
        "[sticker]",
        "[voice message]",
    ]
    assert [m.external_id for m in messages] == [f"5512873340:{n}" for n in (4831, 4832, 4833, 4834)]


async def test_an_unreadable_update_is_logged_filed_raw_and_confirmed(
    sessions: SessionFactory, peer: TelegramPeer, updates: TelegramUpdates, caplog: pytest.LogCaptureFixture
) -> None:
    broken = peer.queue_update(recorded("unreadable_chat.json"))
    silent = peer.queue_update({"message": {"message_id": 3, "chat": {"type": "private"}, "date": 1}})
    poller = Poller(sessions, {"telegram:updates": updates.poll}, interval=1)

    assert await asyncio.wait_for(poller.poll_once(), BOUND) == 1
    later = peer.queue_message(1011, "Vous êtes là ?")
    assert await asyncio.wait_for(poller.poll_once(), BOUND) == 1

    records = sorted(await stored(sessions), key=lambda r: r.id or 0)
    assert [r.text for r in records] == ["Le paiement ne passe toujours pas", "Vous êtes là ?"]
    raw = records[0]
    assert raw.external_id == raw.conversation_key == f"update:{broken}"
    assert raw.raw["message"]["chat"] == "6120394857" and raw.customer_handle == "lucas_b"
    assert f"Telegram update {broken} unreadable: message.chat" in caplog.text
    assert f"Telegram update {silent} unreadable: message.chat.id" in caplog.text
    assert await load_cursor(sessions, "telegram:updates") == str(later + 1)
    assert [c["offset"] for c in peer.get_updates_calls] == [0, silent + 1]


async def test_fields_longer_than_their_column_never_fail_the_batch(
    sessions: SessionFactory, peer: TelegramPeer, updates: TelegramUpdates
) -> None:
    peer.queue_message(1012, "Bonjour", language_code="x-" * 20, first_name="N" * 300, username="u" * 250)
    last = peer.queue_message(1013, "Toujours en panne ?")
    poller = Poller(sessions, {"telegram:updates": updates.poll}, interval=1)

    assert await asyncio.wait_for(poller.poll_once(), BOUND) == 2  # PostgreSQL: varchar(16), varchar(200)

    long, _ = sorted(await stored(sessions), key=lambda r: r.id or 0)
    assert (len(long.language), len(long.customer_name), len(long.customer_handle)) == (16, 200, 200)
    assert long.raw["message"]["from"]["first_name"] == "N" * 300  # the raw update keeps it whole
    assert await load_cursor(sessions, "telegram:updates") == str(last + 1)
