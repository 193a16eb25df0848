"""Customers who wrote in are always told the outcome (issue #10, scenarios 1 and 2).

Everything goes through the real path with the status bot on: stored as the Telegram webhook
would, filed by the inbox (the bot answers, which leaves the conversation pending), the spike
detector drafts, staff publish and resolve, and the dispatcher sends every answer to the real
Bot API peer, which shows where each one landed.
"""

from __future__ import annotations

from sqlmodel import select

from broadcaster.compose.render import Composer
from broadcaster.config import Settings
from broadcaster.db import SessionFactory
from broadcaster.inbox import actions as inbox_actions
from broadcaster.inbox.bot import StatusBot
from broadcaster.inbox.filing import file_pending
from broadcaster.inbox.inbound import store_inbound
from broadcaster.inbox.resolution_answers import answer_linked_conversations
from broadcaster.inbox.spikes import draft_if_spike
from broadcaster.models import Conversation, Incident, IncidentUpdate, utcnow
from broadcaster.publishing.incidents import publish_draft
from channels.base import InboundMessage
from tests.e2e.helpers import draft, live_settings, open_, resolve
from tests.e2e.test_inbox_answers import send_answers
from tests.peers.telegram import TelegramPeer

QUESTION = "le site est en panne ?"


async def ask(
    sessions: SessionFactory, settings: Settings, telegram: TelegramPeer, chat: str, text: str = QUESTION
) -> int:
    """Customer `chat` writes `text`; the inbox files it with the bot on. Returns the message id."""
    message_id = telegram.add_customer_message(chat)
    customer = InboundMessage("telegram", f"{chat}:{message_id}", chat, f"c{chat}", text, utcnow())
    await store_inbound(sessions, [customer])
    assert await file_pending(sessions, bot=StatusBot(settings)) == 1
    return message_id


def last_text(telegram: TelegramPeer, chat: str) -> str:
    return telegram.texts(chat)[-1]


async def conversation(sessions: SessionFactory, chat: str) -> Conversation:
    async with sessions() as session:
        statement = select(Conversation).where(Conversation.conversation_key == chat)
        return (await session.exec(statement)).one()


async def test_every_reporter_of_a_spike_is_told_at_publication_and_at_resolution_once(
    database_url: str, sessions: SessionFactory
) -> None:
    with TelegramPeer() as telegram:
        settings = live_settings(database_url, None, telegram)
        chats = [str(80_000 + n) for n in range(12)]
        asked = {chat: await ask(sessions, settings, telegram, chat) for chat in chats}
        await send_answers(sessions, settings, telegram, 12)
        # The first five reports are below half the spike threshold (10); from the sixth on, the
        # bot says customers report a problem instead of denying it.
        assert all("aucun incident" in last_text(telegram, chat) for chat in chats[:5])
        assert all("Plusieurs clients nous signalent" in last_text(telegram, chat) for chat in chats[5:])
        async with sessions() as session:
            drafted = await draft_if_spike(session, settings, utcnow())
        assert drafted is not None
        # While the draft waits for the staff, a new reporter hears the same, and follows the draft.
        late = "80099"
        asked[late] = await ask(sessions, settings, telegram, late, "is checkout down?")
        await send_answers(sessions, settings, telegram, 13)
        assert "Several customers are reporting a problem" in last_text(telegram, late)
        assert (await conversation(sessions, late)).incident_id == drafted
        assert {(await conversation(sessions, chat)).status for chat in asked} == {"pending"}

        async with sessions() as session:
            published = await publish_draft(
                session, settings, Composer(default_locale="fr"), drafted, title="Paiement indisponible",
                impact="major", components=["payment"], force=True,
                draft=draft("investigating", "Le paiement échoue, désolés.", "Payment fails, sorry."),
            )  # fmt: skip
        await send_answers(sessions, settings, telegram, 13 + 1 + 13)  # + the channel post
        for chat in asked:
            assert "Paiement indisponible" in last_text(telegram, chat)  # told at publication
        closed, stopped = chats[0], chats[1]
        await inbox_actions.close(sessions, (await conversation(sessions, closed)).id or 0)
        asked[stopped] = await ask(sessions, settings, telegram, stopped, "stop")
        await send_answers(sessions, settings, telegram, 28)  # the bot confirms the stop
        before = len(telegram.messages)

        assert published.incident.id is not None
        resolved = await resolve(
            sessions, settings, published.incident.id,
            draft("resolved", "Le paiement fonctionne de nouveau.", "Payment works again."),
        )  # fmt: skip
        told = [chat for chat in asked if chat not in (closed, stopped)]
        await send_answers(sessions, settings, telegram, before + 1 + len(told))
        resolution = [m for m in telegram.messages[before:] if m["chat_id"] != "@shop_status"]
        assert sorted(m["chat_id"] for m in resolution) == sorted(told)  # once each, nobody else
        for answer in resolution:
            assert answer["reply_to_message_id"] == asked[answer["chat_id"]]  # in their own thread
            assert "résolu" in answer["text"] or "resolved" in answer["text"]

        async with sessions() as session:  # asked again for the same resolution: nobody twice
            incident = await session.get(Incident, published.incident.id)
            update = await session.get(IncidentUpdate, resolved.update.id)
            assert incident is not None and update is not None
            again = await answer_linked_conversations(
                session, settings, incident, update, "resolved", utcnow()
            )
            await session.commit()
        assert again == 0


async def test_customers_of_an_incident_opened_by_hand_are_told_it_is_resolved(
    database_url: str, sessions: SessionFactory
) -> None:
    with TelegramPeer() as telegram:
        settings = live_settings(database_url, None, telegram)
        opened = await open_(
            sessions, settings,
            draft("investigating", "Le paiement échoue, nous sommes désolés.", "Payment fails, sorry."),
            force=True,
        )  # fmt: skip
        asked = {chat: await ask(sessions, settings, telegram, chat) for chat in ("71", "72", "73")}
        await send_answers(sessions, settings, telegram, 1 + 3)
        assert all("incident en cours" in last_text(telegram, chat) for chat in asked)  # the bot answered
        assert {(await conversation(sessions, chat)).status for chat in asked} == {"pending"}
        before = len(telegram.messages)
        assert opened.incident.id is not None
        await resolve(
            sessions, settings, opened.incident.id,
            draft("resolved", "Le paiement fonctionne de nouveau.", "Payment works again."),
        )  # fmt: skip
        await send_answers(sessions, settings, telegram, before + 1 + 3)
        for chat, message_id in asked.items():
            (answer,) = [m for m in telegram.messages[before:] if m["chat_id"] == chat]
            assert answer["reply_to_message_id"] == message_id and "résolu" in answer["text"]
