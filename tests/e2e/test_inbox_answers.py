"""Answers leave through the outbox, in each customer's own thread, against the real Bot API peer.

- At resolution, every open conversation about the incident gets one personal answer, in its
  language, as a reply to the customer's own message, and moves to pending.
- Through `broadcaster serve`: a Telegram webhook with a status question gets the bot's answer in
  the customer's chat, quoting their message, with the current ETA.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlmodel import select

from broadcaster.config import Settings
from broadcaster.db import SessionFactory
from broadcaster.delivery.dispatch import Dispatcher
from broadcaster.delivery.runtimes import build_channels
from broadcaster.inbox.filing import file_pending
from broadcaster.inbox.inbound import store_inbound
from broadcaster.models import Conversation, Incident, Message, utcnow
from broadcaster.web import create_app
from channels.base import InboundMessage
from tests.conftest import make_settings
from tests.e2e.helpers import TOKEN, draft, live_settings, open_, resolve
from tests.peers.telegram import TelegramPeer
from tests.staff import bearer, staff_token

pytestmark = pytest.mark.slow
CUSTOMERS = 500
SECRET = "webhook-secret-for-tests"


def outage(hours: int = 2) -> object:
    return draft(
        "identified",
        "Le paiement par carte échoue. Nous sommes désolés, notre équipe corrige.",
        "Card payment fails. We are sorry, our team is fixing it.",
        eta_at=datetime.now(UTC) + timedelta(hours=hours),
        next_update_at=datetime.now(UTC) + timedelta(minutes=30),
    )


async def send_answers(
    sessions: SessionFactory, settings: Settings, peer: TelegramPeer, expected: int
) -> None:
    """Run the dispatcher until the peer has `expected` messages (bounded)."""
    runtimes = build_channels(settings, sessions)
    stop = asyncio.Event()
    runner = asyncio.create_task(Dispatcher(sessions, runtimes, settings.dispatch, "http://t").run(stop))
    try:
        assert await asyncio.to_thread(peer.wait_for, expected, 60.0), f"{len(peer.messages)} of {expected}"
    finally:
        stop.set()
        await runner
        for runtime in runtimes.values():
            await runtime.channel.aclose()


async def test_at_resolution_every_open_conversation_gets_one_answer_in_its_thread(
    database_url: str, sessions: SessionFactory
) -> None:
    with TelegramPeer() as telegram:
        settings = live_settings(database_url, None, telegram)
        opened = await open_(sessions, settings, outage(), force=True)  # type: ignore[arg-type]
        asked: dict[str, int] = {}
        messages = []
        for n in range(1, CUSTOMERS + 1):
            chat = str(70_000 + n)
            asked[chat] = telegram.add_customer_message(chat)
            text = "le site est en panne ?" if n % 2 else "is checkout down?"
            messages.append(
                InboundMessage("telegram", f"{chat}:{asked[chat]}", chat, f"c{n}", text, utcnow())
            )
        messages.append(InboundMessage("telegram", "99:1", "99", "fan", "Merci beaucoup !", utcnow()))
        await store_inbound(sessions, messages)
        filed = [await file_pending(sessions) for _batch in range(3)]  # 501 messages: two batches
        assert filed == [500, CUSTOMERS + 1 - 500, 0]
        await send_answers(sessions, settings, telegram, 1)  # the incident's channel post
        before = len(telegram.messages)
        assert opened.incident.id is not None
        resolved = await resolve(
            sessions, settings, opened.incident.id,
            draft("resolved", "Le paiement fonctionne de nouveau.", "Payment works again.",
                  compensation="10 % de remise avec le code MERCI10"),
        )  # fmt: skip
        await send_answers(sessions, settings, telegram, before + CUSTOMERS + 1)  # + the resolution post
        assert resolved.update.id is not None

    for chat, customer_message in asked.items():
        (answer,) = [m for m in telegram.messages[before:] if m["chat_id"] == chat]
        assert answer["reply_to_message_id"] == customer_message  # in the customer's own thread
        assert "MERCI10" in answer["text"]
        french = int(chat) % 2 == 1
        assert ("résolu" in answer["text"]) is french and ("resolved" in answer["text"]) is not french
    assert all(m["chat_id"] != "99" for m in telegram.messages)  # not about the incident: not answered
    async with sessions() as session:
        answers = list(await session.exec(select(Message).where(Message.direction == "out")))
        conversations = list(await session.exec(select(Conversation)))
    assert len(answers) == CUSTOMERS and {a.delivery_status for a in answers} == {"sent"}
    sent_ids = {f"{m['chat_id']}:{m['message_id']}" for m in telegram.messages}
    assert {a.external_id for a in answers} <= sent_ids  # the provider id, so an echo is recognised
    assert {c.status for c in conversations if c.conversation_key != "99"} == {"pending"}
    assert [c.status for c in conversations if c.conversation_key == "99"] == ["open"]


async def test_an_incident_can_opt_out_of_answering_at_resolution(
    database_url: str, sessions: SessionFactory
) -> None:
    with TelegramPeer() as telegram:
        settings = live_settings(database_url, None, telegram)
        opened = await open_(sessions, settings, outage(), force=True)  # type: ignore[arg-type]
        await store_inbound(
            sessions, [InboundMessage("telegram", "5:1", "5", "c", "site en panne ?", utcnow())]
        )
        await file_pending(sessions)
        assert opened.incident.id is not None
        async with sessions() as session:
            from broadcaster.compose.render import Composer
            from broadcaster.publishing.incidents import resolve_incident

            await resolve_incident(
                session, settings, Composer(default_locale="fr"), opened.incident.id,
                draft("resolved", "Le paiement fonctionne de nouveau.", "Payment works again."),
                answer_conversations=False,
            )  # fmt: skip
        async with sessions() as session:
            assert list(await session.exec(select(Message).where(Message.direction == "out"))) == []
            assert (await session.exec(select(Conversation))).one().status == "open"


def webhook_update(update_id: int, chat: int, message_id: int, text: str, language: str) -> bytes:
    return json.dumps({
        "update_id": update_id,
        "message": {"message_id": message_id, "date": int(time.time()), "text": text,
                    "chat": {"id": chat, "type": "private", "first_name": "Sam"},
                    "from": {"id": chat, "is_bot": False, "first_name": "Sam", "language_code": language}},
    }).encode()  # fmt: skip


async def test_serve_answers_a_status_question_in_the_customers_telegram_thread(
    database_url: str, sessions: SessionFactory
) -> None:
    with TelegramPeer() as telegram:
        settings = make_settings(database_url, channels={"telegram": {
            "token": TOKEN, "base_url": telegram.base_url, "webhook_secret": SECRET,
            "rate_per_second": 0, "per_chat_interval_seconds": 0,
        }})  # fmt: skip
        await open_(sessions, settings, outage(), force=True)  # type: ignore[arg-type]
        chat = 4242
        asked = telegram.add_customer_message(chat)
        app = create_app(settings)
        async with (
            app.router.lifespan_context(app),  # the dispatcher, the filer and its bot run as in serve
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client,
        ):
            response = await client.post(
                "/webhooks/telegram",
                content=webhook_update(1, chat, asked, "is checkout down?", "en"),
                headers={"X-Telegram-Bot-Api-Secret-Token": SECRET, "Content-Type": "application/json"},
            )
            assert response.status_code == 200
            deadline = time.monotonic() + 30
            while not telegram.texts(chat) and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
        (answer,) = [m for m in telegram.messages if m["chat_id"] == str(chat)]
    assert answer["reply_to_message_id"] == asked
    assert answer["parse_mode"] is None  # plain text: nothing the customer wrote can inject markup
    # "tomorrow" when the ETA falls past midnight on the brand's clock.
    assert "ongoing incident" in answer["text"] and re.search(
        r"back to normal (tomorrow )?around", answer["text"]
    )


async def test_serve_with_telegram_polling_answers_without_a_webhook(
    database_url: str, sessions: SessionFactory
) -> None:
    with TelegramPeer() as telegram:
        settings = make_settings(database_url, channels={"telegram": {
            "token": TOKEN, "base_url": telegram.base_url, "polling_timeout_seconds": 1,
            "rate_per_second": 0, "per_chat_interval_seconds": 0,
        }})  # fmt: skip
        app = create_app(settings, telegram_polling=True)
        async with app.router.lifespan_context(app):
            telegram.queue_message(5151, "/status")
            deadline = time.monotonic() + 30
            while not telegram.texts(5151) and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
        (answer,) = telegram.texts(5151)
    assert "aucun incident" in answer  # no incident open, nobody reporting: we know of none
    assert settings.status_url in answer


async def test_serve_turns_a_spike_of_reports_into_one_draft_and_one_staff_alert(
    database_url: str, sessions: SessionFactory
) -> None:
    staff_chat = "-1007770001"
    with TelegramPeer() as telegram:
        settings = make_settings(database_url, staff={"telegram_chat_id": staff_chat}, channels={"telegram": {
            "token": TOKEN, "base_url": telegram.base_url, "webhook_secret": SECRET,
            "rate_per_second": 0, "per_chat_interval_seconds": 0,
        }})  # fmt: skip
        app = create_app(settings)
        customers = [9100 + n for n in range(12)]
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client,
        ):
            for n, chat in enumerate(customers):
                asked = telegram.add_customer_message(chat)
                response = await client.post(
                    "/webhooks/telegram",
                    content=webhook_update(100 + n, chat, asked, "le site est en panne ?", "fr"),
                    headers={"X-Telegram-Bot-Api-Secret-Token": SECRET, "Content-Type": "application/json"},
                )
                assert response.status_code == 200
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not (
                telegram.texts(staff_chat) and all(telegram.texts(chat) for chat in customers)
            ):
                await asyncio.sleep(0.05)
        (alert,) = telegram.texts(staff_chat)  # one alert, not twelve
    assert "broadcaster incident publish" in alert
    async with sessions() as session:
        (drafted,) = await session.exec(select(Incident).where(Incident.status == "draft"))
    assert "le site est en panne" in drafted.notes


async def test_an_agents_api_reply_goes_out_in_the_thread_and_silences_the_bot(
    database_url: str, sessions: SessionFactory
) -> None:
    chat = 6060
    with TelegramPeer() as telegram:
        settings = make_settings(database_url, channels={"telegram": {
            "token": TOKEN, "base_url": telegram.base_url, "webhook_secret": SECRET,
            "rate_per_second": 0, "per_chat_interval_seconds": 0,
        }})  # fmt: skip
        app = create_app(settings)
        hook = {"X-Telegram-Bot-Api-Secret-Token": SECRET, "Content-Type": "application/json"}
        staff = bearer(await staff_token(sessions, "agent"))
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client,
        ):
            first = telegram.add_customer_message(chat)
            text = "ma commande 4521 n'est pas arrivée"
            await client.post(
                "/webhooks/telegram", content=webhook_update(1, chat, first, text, "fr"), headers=hook
            )
            deadline = time.monotonic() + 30
            listed: list[dict[str, object]] = []
            while not listed and time.monotonic() < deadline:
                listed = (await client.get("/api/v1/inbox", headers=staff)).json()
                await asyncio.sleep(0.05)
            (conversation,) = listed
            answer = {"text": "Bonjour, je regarde votre commande 4521 tout de suite.", "author": "Camille"}
            reply = await client.post(f"/api/v1/inbox/{conversation['id']}/reply", json=answer, headers=staff)
            assert reply.status_code == 202
            while not telegram.texts(chat) and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            second = telegram.add_customer_message(chat)
            question = webhook_update(2, chat, second, "le site est en panne ?", "fr")
            await client.post("/webhooks/telegram", content=question, headers=hook)
            shown: dict[str, object] = {}
            while time.monotonic() < deadline:
                shown = (await client.get(f"/api/v1/inbox/{conversation['id']}", headers=staff)).json()
                if len(shown["messages"]) == 3 and shown["status"] == "open":  # type: ignore[arg-type]
                    break
                await asyncio.sleep(0.05)
        (sent,) = [m for m in telegram.messages if m["chat_id"] == str(chat)]  # the bot stayed quiet
    assert sent["reply_to_message_id"] == first and "4521" in sent["text"]
    messages = shown["messages"]
    assert [m["direction"] for m in messages] == ["in", "out", "in"]  # type: ignore[index, union-attr]
    assert messages[1]["author"] == "Camille" and messages[1]["delivery_status"] == "sent"  # type: ignore[index]
