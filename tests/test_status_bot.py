"""The status bot: live answers in the customer's language, once per incident update, commands."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from sqlmodel import col, select

from broadcaster.config import Settings
from broadcaster.db import SessionFactory
from broadcaster.delivery import outbox
from broadcaster.delivery.dispatch import Dispatcher
from broadcaster.delivery.runtimes import build_channels
from broadcaster.delivery.subscribers import NewSubscriber
from broadcaster.inbox.bot import StatusBot
from broadcaster.inbox.filing import file_pending
from broadcaster.inbox.inbound import store_inbound
from broadcaster.models import Conversation, Delivery, Message, Subscription, utcnow
from channels.base import InboundMessage
from tests.conftest import make_settings
from tests.e2e.helpers import draft, follow_up, open_, subscribe

_counter = iter(range(1, 1_000_000))


def said(text: str, *, channel: str = "telegram", key: str = "501", **extra: object) -> InboundMessage:
    number = next(_counter)
    return InboundMessage(
        channel=channel,
        external_id=f"{key}:{number}" if channel == "telegram" else f"{channel}-{number}",
        conversation_key=key,
        customer_handle=f"handle-{key}",
        customer_name="Léa",
        text=text,
        received_at=utcnow(),
        **extra,
    )  # type: ignore[arg-type]


async def ask(sessions: SessionFactory, settings: Settings, *messages: InboundMessage) -> list[Message]:
    """Store and file `messages` with the bot on; return the bot's answers written by this call."""
    async with sessions() as session:
        before = len(list(await session.exec(select(Message.id).where(Message.direction == "out"))))
    await store_inbound(sessions, list(messages))
    assert await file_pending(sessions, bot=StatusBot(settings)) == len(messages)
    async with sessions() as session:
        out = list(
            await session.exec(select(Message).where(Message.direction == "out").order_by(col(Message.id)))
        )
    return out[before:]


def eta_draft(hours: int = 2) -> object:
    eta = datetime.now(UTC) + timedelta(hours=hours)
    return draft(
        "identified",
        "Le paiement par carte échoue. Nous sommes désolés, notre équipe corrige.",
        "Card payment fails. We are sorry, our team is fixing it.",
        eta_at=eta,
        next_update_at=datetime.now(UTC) + timedelta(minutes=30),
    )


async def test_answers_in_french_and_english_with_the_current_eta(
    database_url: str, sessions: SessionFactory
) -> None:
    settings = make_settings(database_url)
    opened = await open_(sessions, settings, eta_draft(), force=True)  # type: ignore[arg-type]
    (fr,) = await ask(sessions, settings, said("le site est en panne ?", key="1"))
    (en,) = await ask(sessions, settings, said("is checkout down", key="2"))
    assert fr.language == "fr" and en.language == "en"
    # The ETA is 2 h away: "demain" when that is past midnight on the brand's clock (Europe/Paris).
    assert "incident en cours" in fr.text and re.search(r"Retour à la normale prévu (demain )?vers", fr.text)
    assert "ongoing incident" in en.text and re.search(r"back to normal (tomorrow )?around", en.text)
    for answer in (fr, en):
        assert f"/incidents/{opened.incident.id}" in answer.text
        assert answer.author == "bot" and answer.delivery_status == "queued"
    async with sessions() as session:
        delivery = (await session.exec(select(Delivery).where(Delivery.message_id == fr.id))).one()
    assert delivery.channel == "telegram" and delivery.target == "1"
    assert delivery.reply["in_reply_to"] == fr.reply_to  # answers the customer's own message


async def test_with_no_incident_open_and_no_reports_it_knows_of_no_incident(
    database_url: str, sessions: SessionFactory
) -> None:
    settings = make_settings(database_url)
    (fr,) = await ask(sessions, settings, said("le site bug ???", key="3"))
    (en,) = await ask(sessions, settings, said("is the site down?", key="4"))
    assert "aucun incident" in fr.text and settings.status_url in fr.text
    assert "no incident" in en.text and settings.status_url in en.text


async def test_one_answer_per_incident_update_and_again_after_a_new_one(
    database_url: str, sessions: SessionFactory
) -> None:
    settings = make_settings(database_url)
    opened = await open_(sessions, settings, eta_draft(), force=True)  # type: ignore[arg-type]
    assert (
        len(await ask(sessions, settings, said("le site est en panne ?"), said("toujours en panne ??"))) == 1
    )
    assert await ask(sessions, settings, said("c'est en panne encore ?")) == []  # no loop, no repeat
    assert opened.incident.id is not None
    await follow_up(sessions, settings, opened.incident.id, eta_draft(1))  # type: ignore[arg-type]
    (again,) = await ask(sessions, settings, said("et maintenant, ça marche ?"))
    assert "Retour à la normale prévu" in again.text


async def test_a_human_reply_wins(database_url: str, sessions: SessionFactory) -> None:
    settings = make_settings(database_url)
    await ask(sessions, settings, said("ma commande 1234 n'est pas arrivée", key="9"))
    async with sessions() as session:  # what an agent's reply records (inbox_actions.reply)
        conversation = (await session.exec(select(Conversation))).one()
        conversation.handed_off = True
        session.add(conversation)
        await session.commit()
    assert await ask(sessions, settings, said("le site est en panne ?", key="9")) == []
    (answer,) = await ask(sessions, settings, said("/status", key="9"))  # an explicit command still works
    assert "aucun incident" in answer.text


async def test_only_status_questions_are_answered_the_rest_waits_for_an_agent(
    database_url: str, sessions: SessionFactory
) -> None:
    settings = make_settings(database_url)
    assert (
        await ask(sessions, settings, said("ma commande n'est jamais arrivée, je suis furieux", key="7"))
        == []
    )
    async with sessions() as session:
        conversation = (await session.exec(select(Conversation))).one()
    assert conversation.status == "open"
    await ask(sessions, settings, said("le site est en panne ?", key="8"))
    async with sessions() as session:
        answered = (
            await session.exec(select(Conversation).where(Conversation.conversation_key == "8"))
        ).one()
    assert answered.status == "pending"  # settled by the bot: not in the agents' open queue


async def test_telegram_commands(database_url: str, sessions: SessionFactory) -> None:
    settings = make_settings(database_url)
    (start,) = await ask(sessions, settings, said("/start"))
    assert "/subscribe" in start.text and "Léa" in start.text
    (subscribed,) = await ask(sessions, settings, said("/subscribe paiement"))
    assert "Paiement" in subscribed.text
    async with sessions() as session:
        subscription = (await session.exec(select(Subscription))).one()
    assert (subscription.channel, subscription.address, subscription.components) == (
        "telegram",
        "501",
        ["payment"],
    )
    assert subscription.active
    (unknown_component,) = await ask(sessions, settings, said("/subscribe frigo"))
    assert "frigo" in unknown_component.text and "Commande" in unknown_component.text
    (english,) = await ask(sessions, settings, said("/lang en"))
    assert english.text.startswith("Got it") and english.language == "en"
    (stopped,) = await ask(sessions, settings, said("/unsubscribe"))
    assert stopped.text.startswith("Done") and stopped.language == "en"
    async with sessions() as session:
        subscription = (await session.exec(select(Subscription))).one()
    assert not subscription.active and subscription.deactivated_reason == "unsubscribed from a chat"
    (help_,) = await ask(sessions, settings, said("/frobnicate"))
    assert "/frobnicate" in help_.text and "/status" in help_.text


async def test_plain_words_subscribe_and_stop(database_url: str, sessions: SessionFactory) -> None:
    settings = make_settings(database_url)
    (subscribed,) = await ask(sessions, settings, said("abonnez-moi aux alertes svp", key="77"))
    assert "alertes" in subscribed.text
    (stopped,) = await ask(sessions, settings, said("stop", key="77"))
    assert "plus nos alertes" in stopped.text
    (nothing,) = await ask(sessions, settings, said("stop", key="78"))
    assert "rien à arrêter" in nothing.text
    (elsewhere,) = await ask(sessions, settings, said("abonnez-moi", channel="twitter", key="12345"))
    assert "Telegram" in elsewhere.text  # X cannot carry our alerts: says where to subscribe


async def test_stop_by_email_reply_deactivates_that_subscription(
    database_url: str, sessions: SessionFactory
) -> None:
    settings = make_settings(database_url)
    await subscribe(
        sessions, settings, [NewSubscriber(email="lea@example.org", locale="fr", name="Léa", line=2)]
    )
    async with sessions() as session:
        subscription = (await session.exec(select(Subscription))).one()
    raw = {"subject": "Re: Incident", "from": "lea@example.org"}
    stop = said("STOP", channel="email", key=subscription.reply_token, raw=raw)
    (stopped,) = await ask(sessions, settings, stop)
    assert "plus nos alertes" in stopped.text
    async with sessions() as session:
        assert not (await session.exec(select(Subscription))).one().active


async def test_an_echo_of_our_own_answer_is_not_filed_as_a_customer_message(
    database_url: str, sessions: SessionFactory
) -> None:
    settings = make_settings(database_url)
    (answer,) = await ask(sessions, settings, said("le site est en panne ?", key="55"))
    async with sessions() as session:  # as the dispatcher records a sent answer
        answer.external_id = "55:9001"
        session.add(answer)
        await session.commit()
    echo = InboundMessage("telegram", "55:9001", "55", "bot", answer.text, utcnow())
    await store_inbound(sessions, [echo])
    assert await file_pending(sessions, bot=StatusBot(settings)) == 1
    async with sessions() as session:
        incoming = list(await session.exec(select(Message).where(Message.direction == "in")))
    assert [m.external_id for m in incoming] == ["55:" + incoming[0].external_id.split(":")[1]]  # type: ignore[union-attr]
    assert all(m.external_id != "55:9001" for m in incoming)


async def test_the_bot_can_be_switched_off(database_url: str, sessions: SessionFactory) -> None:
    settings = make_settings(database_url, inbox={"bot_enabled": False})
    assert await ask(sessions, settings, said("le site est en panne ?")) == []


async def test_answers_handed_to_a_worker_that_dies_are_claimed_again_after_the_lease(
    database_url: str, sessions: SessionFactory
) -> None:
    settings = make_settings(database_url)
    dispatcher = Dispatcher(sessions, build_channels(settings, sessions), settings.dispatch, "http://t")
    await store_inbound(sessions, [said("le site est en panne ?", key="31")])
    handed_over = dispatcher.hand_off()  # claimed for this process's workers, never sent
    assert await file_pending(sessions, bot=StatusBot(settings), hand_off=handed_over) == 1
    async with sessions() as session:
        (row,) = await session.exec(select(Delivery).where(col(Delivery.message_id).is_not(None)))
        assert (row.status, row.attempts) == ("sending", 1)  # claimed in the filing transaction
        assert await outbox.claim(session, "telegram", 10, 60) == []  # the lease holds
        later = utcnow() + timedelta(seconds=settings.dispatch.lease_seconds + 1)
        (again,) = await outbox.claim(session, "telegram", 10, 60, now=later)
    assert again.id == row.id and again.reply is not None and again.attempts == 2


async def test_stop_in_a_chat_cancels_the_broadcasts_still_waiting_for_it(
    database_url: str, sessions: SessionFactory
) -> None:
    settings = make_settings(database_url)
    await ask(sessions, settings, said("/subscribe"))
    opening = draft("investigating", "Le paiement échoue.", "Payment fails.")
    await open_(sessions, settings, opening, force=True)
    (stopped,) = await ask(sessions, settings, said("/unsubscribe"))
    async with sessions() as session:
        to_chat = list(await session.exec(select(Delivery).where(Delivery.target == "501")))
    broadcasts = [d for d in to_chat if d.message_id is None]
    answers = [d for d in to_chat if d.message_id == stopped.id]
    cancelled = ("failed", "not sent: unsubscribed from a chat")
    assert [(d.status, d.last_error) for d in broadcasts] == [cancelled]
    assert [d.status for d in answers] == ["pending"]  # the bot's "Done" still goes out
