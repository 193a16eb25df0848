"""An agent's actions on a conversation: answer (text or canned), assign, label, close, reopen."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlmodel import col, func, select

from broadcaster.compose.render import format_when
from broadcaster.config import Settings
from broadcaster.db import SessionFactory
from broadcaster.inbox import actions as inbox_actions
from broadcaster.inbox.actions import InboxError, UnknownConversation
from broadcaster.inbox.filing import conversation_dict, file_pending, message_dict
from broadcaster.inbox.inbound import store_inbound
from broadcaster.models import Conversation, Delivery, Message
from channels.base import InboundMessage
from tests.conftest import make_settings
from tests.e2e.helpers import draft, follow_up, open_

AT = datetime(2026, 11, 22, 13, 0, tzinfo=UTC)


def inbound(
    external_id: str, text: str, *, key: str = "42", channel: str = "telegram", **extra: Any
) -> InboundMessage:
    return InboundMessage(
        channel=channel,
        external_id=external_id,
        conversation_key=key,
        customer_handle=f"@{key}",
        text=text,
        received_at=extra.pop("received_at", AT),
        **extra,
    )


async def customer_writes(sessions: SessionFactory, *messages: InboundMessage) -> list[int]:
    """Store and file customer messages the way webhooks and the filer do, each reaching us when its
    sender says it was sent; their conversations' ids."""
    for message in messages:
        await store_inbound(sessions, [message], now=message.received_at)
    await file_pending(sessions)
    async with sessions() as session:
        ids = []
        for message in messages:
            statement = select(Conversation.id).where(
                Conversation.channel == message.channel,
                Conversation.conversation_key == message.conversation_key,
            )
            ids.append((await session.exec(statement)).one())
    return [i for i in ids if i is not None]


async def conversation(sessions: SessionFactory, conversation_id: int) -> Conversation:
    async with sessions() as session:
        found = await session.get(Conversation, conversation_id)
        assert found is not None
        return found


async def answers(sessions: SessionFactory) -> tuple[list[Message], list[Delivery]]:
    async with sessions() as session:
        out = list(await session.exec(select(Message).where(Message.direction == "out")))
        deliveries = list(await session.exec(select(Delivery).order_by(col(Delivery.id))))
    return out, deliveries


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(database_url)


async def test_a_reply_is_one_message_and_one_delivery_answering_the_latest_customer_message(
    sessions: SessionFactory, settings: Settings
) -> None:
    (cid, _) = await customer_writes(
        sessions,
        inbound("42:1", "le site est en panne ?", customer_name="Léa"),
        inbound("42:2", "toujours rien", received_at=AT + timedelta(minutes=1)),
    )
    message = await inbox_actions.reply(
        sessions, settings, cid, text="  Nous regardons, désolés.  ", canned=None, author="Camille"
    )
    (out,), (delivery,) = await answers(sessions)
    assert out.id == message.id and out.conversation_id == cid
    assert (out.text, out.author, out.delivery_status, out.reply_to) == (
        "Nous regardons, désolés.", "Camille", "queued", "42:2",
    )  # fmt: skip
    assert delivery.message_id == out.id and delivery.channel == "telegram" and delivery.target == "42"
    assert delivery.reply["in_reply_to"] == "42:2" and delivery.reply["conversation_key"] == "42"
    assert delivery.update_id is None and delivery.status == "pending"
    after = await conversation(sessions, cid)
    assert (after.status, after.handed_off) == ("pending", True)

    await customer_writes(sessions, inbound("42:3", "merci", received_at=AT + timedelta(minutes=5)))
    again = await conversation(sessions, cid)
    assert (again.status, again.handed_off) == ("open", True)  # it needs us again; still no bot


async def test_a_canned_reply_tells_the_current_eta_in_the_customers_language(
    sessions: SessionFactory, settings: Settings
) -> None:
    now = datetime.now(UTC)
    opened = await open_(
        sessions,
        settings,
        draft(
            "investigating",
            "Le paiement échoue. Désolés.",
            "Payment fails. Sorry.",
            eta_at=now + timedelta(hours=1),
        ),
        force=True,
    )
    assert opened.incident.id is not None
    later_eta = now + timedelta(hours=3)
    await follow_up(
        sessions,
        settings,
        opened.incident.id,
        draft("identified", "Cause trouvée. Désolés.", "Cause found. Sorry.", eta_at=later_eta),
    )
    english, french = await customer_writes(
        sessions,
        inbound("7:1", "is checkout down? I cannot pay", key="7", language="en", customer_name="Sam"),
        inbound("8:1", "le paiement ne marche pas", key="8", language="fr"),
    )
    answer_en = await inbox_actions.reply(
        sessions, settings, english, text=None, canned="eta", author="Camille", now=now
    )
    answer_fr = await inbox_actions.reply(
        sessions, settings, french, text=None, canned="eta", author="Camille", now=now
    )
    eta_en = format_when(later_eta, timezone="Europe/Paris", locale="en", now=now, prep="around")
    eta_fr = format_when(later_eta, timezone="Europe/Paris", locale="fr", now=now, prep="around")
    assert f"We expect things back to normal {eta_en}." in answer_en.text
    assert "Paiement indisponible" in answer_en.text and answer_en.language == "en"
    assert f"Retour à la normale prévu {eta_fr}." in answer_fr.text and answer_fr.language == "fr"
    _, deliveries = await answers(sessions)
    assert {d.locale for d in deliveries if d.message_id is not None} == {"en", "fr"}


async def test_a_canned_reply_uses_the_customers_name(sessions: SessionFactory, settings: Settings) -> None:
    (cid,) = await customer_writes(
        sessions, inbound("9:1", "my order is stuck", key="9", language="en", customer_name="Sam")
    )
    message = await inbox_actions.reply(
        sessions, settings, cid, text=None, canned="order_problem", author="Camille"
    )
    assert message.text.startswith("Hello Sam,")


async def test_closing_hands_back_to_the_bot_and_answering_a_closed_conversation_reopens_it_as_pending(
    sessions: SessionFactory, settings: Settings
) -> None:
    (cid,) = await customer_writes(sessions, inbound("42:1", "où en est ma commande ?"))
    await inbox_actions.reply(sessions, settings, cid, text="On regarde.", canned=None, author="Camille")
    closed = await inbox_actions.close(sessions, cid)
    assert (closed.status, closed.handed_off) == ("closed", False)
    await inbox_actions.reply(sessions, settings, cid, text="C'est réglé.", canned=None, author="Camille")
    assert (await conversation(sessions, cid)).status == "pending"
    reopened = await inbox_actions.reopen(sessions, cid)
    assert reopened.status == "open"
    out, deliveries = await answers(sessions)
    assert len(out) == len(deliveries) == 2


async def test_assign_and_labels_are_kept_normalised_and_filter_the_list(sessions: SessionFactory) -> None:
    first, second, third = await customer_writes(
        sessions,
        inbound("1:1", "bonjour", key="1"),
        inbound("2:1", "bonjour", key="2", received_at=AT + timedelta(minutes=1)),
        inbound("3:1", "bonjour", key="3", received_at=AT + timedelta(minutes=2)),
    )
    assert (await inbox_actions.assign(sessions, first, "  Camille ")).assignee == "Camille"
    labelled = await inbox_actions.label(sessions, first, ["Refund", "vip", "refund", "a_b"], [])
    assert labelled.labels == ["a_b", "refund", "vip"]
    assert (await inbox_actions.label(sessions, first, ["late"], ["VIP"])).labels == ["a_b", "late", "refund"]
    await inbox_actions.label(sessions, second, ["axb"], [])  # "_" must not act as a wildcard
    await inbox_actions.close(sessions, third)

    async def ids(**filters: Any) -> list[int | None]:
        return [c.id for c, _ in await inbox_actions.find_conversations(sessions, **filters)]

    assert await ids() == [third, second, first]
    assert await ids(assignee="Camille") == [first]
    assert await ids(label="a_b") == [first]
    assert await ids(label="AXB") == [second]
    assert await ids(status="closed") == [third]
    assert await ids(status="open", limit=1) == [second]
    assert (await inbox_actions.assign(sessions, first, "")).assignee == ""
    assert await ids(assignee="Camille") == []


async def test_the_list_shows_each_conversations_latest_message(
    sessions: SessionFactory, settings: Settings
) -> None:
    (cid, _) = await customer_writes(
        sessions,
        inbound("42:1", "premier", key="42"),
        inbound("42:2", "second", key="42", received_at=AT + timedelta(minutes=1)),
    )
    ((listed, latest),) = await inbox_actions.find_conversations(sessions)
    assert listed.id == cid and latest is not None and latest.text == "second"
    await inbox_actions.reply(sessions, settings, cid, text="Réponse", canned=None, author="Camille")
    ((_, latest),) = await inbox_actions.find_conversations(sessions)
    assert latest is not None and latest.direction == "out"
    view = conversation_dict(listed, latest)
    assert view["last_message"] == message_dict(latest)
    assert message_dict(latest)["delivery_status"] == "queued"


BAD_REPLIES: Sequence[tuple[dict[str, Any], str]] = [
    ({"text": "a", "canned": "eta"}, "either the text of the reply or a canned reply"),
    ({"text": None, "canned": None}, "either the text of the reply or a canned reply"),
    ({"text": "   ", "canned": None}, "the reply is empty"),
    ({"text": "x" * 10_001, "canned": None}, "10001 characters long; at most 10000"),
    ({"text": None, "canned": "nope"}, "no canned reply 'nope' in fr (available: eta, order_problem,"),
    ({"text": None, "canned": "status_incident"}, "no canned reply 'status_incident'"),  # a bot answer
    ({"text": None, "canned": "../fr/eta"}, "no canned reply '../fr/eta'"),
    ({"text": "ok", "canned": None, "author": " "}, "the reply needs an author"),
    ({"text": "ok", "canned": None, "author": "x" * 121}, "author is 121 characters long"),
]


@pytest.mark.parametrize(("arguments", "expected"), BAD_REPLIES)
async def test_a_bad_reply_is_refused_clearly_and_writes_nothing(
    sessions: SessionFactory, settings: Settings, arguments: dict[str, Any], expected: str
) -> None:
    (cid,) = await customer_writes(sessions, inbound("42:1", "allo ?"))
    arguments = {"author": "Camille"} | arguments
    with pytest.raises(InboxError, match=re.escape(expected)):
        await inbox_actions.reply(sessions, settings, cid, **arguments)
    assert await answers(sessions) == ([], [])
    after = await conversation(sessions, cid)
    assert (after.status, after.handed_off) == ("open", False)


@pytest.mark.parametrize(
    ("action", "expected"),
    [
        (lambda s, cid: inbox_actions.label(s, cid, ["Bad Label!"], []), "label 'Bad Label!' is not allowed"),
        (lambda s, cid: inbox_actions.label(s, cid, ["x" * 33], []), "is not allowed: use 1 to 32"),
        (lambda s, cid: inbox_actions.label(s, cid, ["ok", ""], []), "label '' is not allowed"),
        (lambda s, cid: inbox_actions.label(s, cid, ["vip"], ["VIP"]), "'vip' is both added and removed"),
        (lambda s, cid: inbox_actions.assign(s, cid, "a\nb"), "contains control characters"),
        (lambda s, cid: inbox_actions.find_conversations(s, status="done"), "unknown status 'done'"),
        (lambda s, cid: inbox_actions.find_conversations(s, limit=501), "between 1 and 500"),
    ],
)
async def test_bad_input_is_refused_clearly_and_changes_nothing(
    sessions: SessionFactory, action: Any, expected: str
) -> None:
    (cid,) = await customer_writes(sessions, inbound("42:1", "allo ?"))
    await inbox_actions.label(sessions, cid, ["kept"], [])
    with pytest.raises(InboxError, match=re.escape(expected)):
        await action(sessions, cid)
    after = await conversation(sessions, cid)
    assert (after.labels, after.assignee, after.status) == (["kept"], "", "open")


async def test_an_unknown_conversation_is_named(sessions: SessionFactory, settings: Settings) -> None:
    actions: list[Callable[[], Awaitable[object]]] = [
        lambda: inbox_actions.reply(sessions, settings, 999, text="hi", canned=None, author="Camille"),
        lambda: inbox_actions.assign(sessions, 999, "Camille"),
        lambda: inbox_actions.label(sessions, 999, ["vip"], []),
        lambda: inbox_actions.close(sessions, 999),
        lambda: inbox_actions.reopen(sessions, 999),
    ]
    for action in actions:
        with pytest.raises(UnknownConversation, match="no conversation #999"):
            await action()
    async with sessions() as session:
        assert (await session.exec(select(func.count()).select_from(Delivery))).one() == 0


async def test_canned_previews_render_every_canned_reply_for_the_current_state(
    sessions: SessionFactory, settings: Settings
) -> None:
    previews = await inbox_actions.canned_previews(sessions, settings, "en")
    names = [p.name for p in previews]
    assert names == sorted(names) and {"eta", "thanks", "workaround"} <= set(names)
    assert "status_incident" not in names  # the bot's own answers are not canned replies
    eta = next(p for p in previews if p.name == "eta")
    assert eta.text.startswith("Everything is working normally") and not eta.problem
