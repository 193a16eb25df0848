"""A customer answers a broadcast e-mail: accepted by our listener, filed, linked to the incident."""

from __future__ import annotations

from email.message import EmailMessage

import aiosmtplib
import pytest
from sqlmodel import col, select

from broadcaster.config import Settings
from broadcaster.db import SessionFactory
from broadcaster.delivery.subscribers import NewSubscriber
from broadcaster.inbox.actions import find_conversations
from broadcaster.inbox.actions import reply as reply_to_conversation
from broadcaster.inbox.filing import file_pending
from broadcaster.models import Delivery, Message, Subscription
from broadcaster.web.app import inbound_email_listener
from tests.conftest import make_settings
from tests.e2e.helpers import deliver, draft, open_, subscribe
from tests.peers.smtp import free_port

pytestmark = pytest.mark.slow
LONG_ID = 2000  # a Message-ID has no folding whitespace: one header line, past RFC 5321's 1,000 octets


async def listening_for_camille(database_url: str, sessions: SessionFactory) -> tuple[Settings, int]:
    """Settings with our SMTP listener on a free port, and Camille subscribed by e-mail."""
    port = free_port()
    settings = make_settings(
        database_url,
        channels={
            "email": {"inbound_enabled": True, "inbound_port": port, "reply_domain": "reply.shop.example"}
        },
    )
    await subscribe(sessions, settings, [NewSubscriber(email="camille@example.com", line=2)])
    return settings, port


def reply(to: str, in_reply_to: str, text: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = "Camille Client <camille@example.com>"
    message["To"] = to
    message["Subject"] = "Re: [Maison Exemple] Commande : nous enquêtons"
    message["Message-ID"] = "<reply-1@example.com>"
    message["In-Reply-To"] = in_reply_to
    message.set_content(f"{text}\n\nLe 22 nov. 2026, Maison Exemple a écrit :\n> Le paiement échoue.\n")
    return message


async def test_reply_to_a_broadcast_lands_in_the_inbox_and_strangers_are_refused(
    database_url: str, sessions: SessionFactory
) -> None:
    settings, port = await listening_for_camille(database_url, sessions)
    opening = draft("investigating", "Le paiement échoue. Désolés, on enquête.", "Payment fails. Sorry.")
    opened = await open_(sessions, settings, opening, force=True)
    await deliver(sessions, settings, opened)  # capture mode: the Message-ID is known all the same
    async with sessions() as session:
        token = (await session.exec(select(Subscription.reply_token))).one()
        sent = (await session.exec(select(Delivery).where(Delivery.channel == "email"))).one()
    address = f"reply+{opened.update.id}.{token}@reply.shop.example"

    listener = inbound_email_listener(settings, sessions)
    assert listener is not None
    async with listener:
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, local_hostname="client.example")
        await client.connect()
        try:
            with pytest.raises(aiosmtplib.SMTPRecipientsRefused) as unknown:
                await client.send_message(
                    reply(f"reply+{opened.update.id}.deadbeefdeadbeef@reply.shop.example", "<x@y>", "hello")
                )
            assert unknown.value.recipients[0].code == 550
            with pytest.raises(aiosmtplib.SMTPRecipientsRefused):
                await client.send_message(reply("someone@elsewhere.example", "<x@y>", "relay me"))
            errors, _ = await client.send_message(
                reply(address, sent.provider_message_id, "Est-ce que je peux commander par téléphone ?")
            )
            assert errors == {}
        finally:
            await client.quit()

    assert await file_pending(sessions) == 1
    ((conversation, latest),) = await find_conversations(sessions)
    assert conversation.channel == "email" and conversation.incident_id == opened.incident.id
    assert latest is not None and latest.text == "Est-ce que je peux commander par téléphone ?"


def reply_with_id(to: str, *, message_id: str, text: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = "Camille Client <camille@example.com>"
    message["To"] = to
    message["Subject"] = "Re: [Maison Exemple] Commande : nous enquêtons"
    message["Message-ID"] = message_id
    message["In-Reply-To"] = "<" + "r" * LONG_ID + "@shop.example>"
    message.set_content(text)
    return message


async def test_an_email_with_a_1kb_message_id_or_a_nul_is_accepted_and_filed(
    database_url: str, sessions: SessionFactory
) -> None:
    settings, port = await listening_for_camille(database_url, sessions)
    opened = await open_(
        sessions, settings, draft("investigating", "Le paiement échoue.", "Payment fails."), force=True
    )
    await deliver(sessions, settings, opened)
    async with sessions() as session:
        token = (await session.exec(select(Subscription.reply_token))).one()
    address = f"reply+{opened.update.id}.{token}@reply.shop.example"
    long_ids = ["<" + "a" * LONG_ID + f"{n}@example.com>" for n in range(2)]  # alike but for their ends
    listener = inbound_email_listener(settings, sessions)
    assert listener is not None
    async with listener:
        smtp = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, local_hostname="client.example", timeout=10)
        await smtp.connect()
        try:
            for message_id, text in [("<nul@example.com>", "le site\x00 est en panne ?")] + [
                (long_id, "ok ?") for long_id in long_ids
            ]:
                errors, answer = await smtp.send_message(
                    reply_with_id(address, message_id=message_id, text=text)
                )
                assert errors == {} and answer.startswith("2")
        finally:
            await smtp.quit()
    assert await file_pending(sessions) == 3
    async with sessions() as session:
        texts = sorted(m.text for m in await session.exec(select(Message)))
    assert texts == ["le site est en panne ?", "ok ?", "ok ?"]
    ((conversation, _),) = await find_conversations(sessions)
    assert conversation.id is not None
    await reply_to_conversation(
        sessions, settings, conversation.id, text="Bonjour Camille", canned=None, author="Noé"
    )
    async with sessions() as session:
        answer_row = (await session.exec(select(Delivery).where(col(Delivery.message_id).is_not(None)))).one()
    assert answer_row.status == "pending"  # the answer to the long-id message is queued like any other
