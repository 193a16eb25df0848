"""Filing customer messages: one conversation per customer and channel, deduplicated, linked to incidents."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlmodel import select
from typer.testing import CliRunner

from broadcaster.cli import app
from broadcaster.db import SessionFactory, create_engine, session_factory
from broadcaster.delivery.subscribers import NewSubscriber
from broadcaster.inbox.actions import find_conversations
from broadcaster.inbox.filing import file_pending
from broadcaster.inbox.inbound import store_inbound
from broadcaster.models import Delivery, Message
from channels.base import InboundMessage
from tests.conftest import make_settings
from tests.e2e.helpers import deliver, draft, open_, resolve, subscribe

AT = datetime(2026, 11, 22, 13, 0, tzinfo=UTC)
OPENING = draft("investigating", "Le paiement échoue. Désolés, on enquête.", "Payment fails. Sorry, on it.")


def inbound(
    channel: str, external_id: str, text: str, *, key: str = "client-1", **extra: object
) -> InboundMessage:
    return InboundMessage(
        channel=channel,
        external_id=external_id,
        conversation_key=key,
        customer_handle=f"@{key}",
        text=text,
        received_at=AT,
        **extra,
    )  # type: ignore[arg-type]


async def test_one_conversation_per_customer_and_channel_and_no_duplicates(sessions: SessionFactory) -> None:
    await store_inbound(
        sessions,
        [
            inbound("telegram", "42:1", "le site est en panne ?", key="42"),
            inbound("telegram", "42:2", "toujours rien ??", key="42"),
            inbound("twitter", "tweet:9", "@shop is checkout down", key="conv-9"),
        ],
    )
    await store_inbound(
        sessions, [inbound("telegram", "42:1", "le site est en panne ?", key="42")]
    )  # replayed
    assert await file_pending(sessions) == 3
    assert await file_pending(sessions) == 0
    rows = await find_conversations(sessions)
    assert sorted((c.channel, c.conversation_key) for c, _ in rows) == [
        ("telegram", "42"),
        ("twitter", "conv-9"),
    ]
    async with sessions() as session:
        assert len(list(await session.exec(select(Message)))) == 3


async def test_messages_about_the_outage_are_linked_to_the_open_incident(
    database_url: str, sessions: SessionFactory
) -> None:
    settings = make_settings(database_url)
    opened = await open_(sessions, settings, OPENING, force=True)
    await store_inbound(
        sessions,
        [
            inbound("twitter", "tweet:1", "@shop le site est en panne ?", key="a"),
            inbound("facebook", "comment:1", "Merci beaucoup pour votre travail !", key="b"),
        ],
    )
    await file_pending(sessions)
    linked = {c.channel: c.incident_id for c, _ in await find_conversations(sessions)}
    assert linked == {"twitter": opened.incident.id, "facebook": None}
    assert {m.intent for _c, m in await find_conversations(sessions) if m} >= {"status_question", "thanks"}


async def test_a_reply_to_a_broadcast_is_linked_even_after_resolution(
    database_url: str, sessions: SessionFactory
) -> None:
    settings = make_settings(database_url)  # capture mode: provider ids are known all the same
    await subscribe(sessions, settings, [NewSubscriber(telegram_chat_id="777", line=2)])
    opened = await open_(sessions, settings, OPENING, force=True)
    await deliver(sessions, settings, opened)
    assert opened.incident.id is not None
    await resolve(
        sessions,
        settings,
        opened.incident.id,
        draft("resolved", "Tout remarche. Merci !", "All good. Thanks!"),
    )
    async with sessions() as session:
        statement = select(Delivery).where(Delivery.target == "777", Delivery.update_id == opened.update.id)
        sent = (await session.exec(statement)).one()
    await store_inbound(
        sessions,
        [inbound("telegram", "777:50", "Merci pour l'info", key="777", reply_to=sent.provider_message_id)],
    )
    await file_pending(sessions)
    ((conversation, _),) = await find_conversations(sessions)
    assert conversation.incident_id == opened.incident.id


def test_html_is_stored_as_text_and_shown_escaped(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hostile = "<script>alert('x')</script> [bold]le site[/bold] est en panne ?"

    async def setup() -> tuple[int, str, str]:
        engine = create_engine(database_url)
        sessions = session_factory(engine)
        await store_inbound(sessions, [inbound("telegram", "9:1", hostile, key="9")])
        await file_pending(sessions)
        ((conversation, latest),) = await find_conversations(sessions)
        await engine.dispose()
        assert conversation.id is not None and latest is not None
        return conversation.id, latest.text, latest.intent

    conversation_id, stored_text, intent = asyncio.run(setup())
    assert stored_text == hostile  # stored verbatim, as text
    assert intent == "status_question"
    config = tmp_path / "config.toml"
    config.write_text(f'[database]\nurl = "{database_url}"\n', encoding="utf-8")
    monkeypatch.setenv("COLUMNS", "200")
    shown = CliRunner().invoke(app, ["--config", str(config), "inbox", "show", str(conversation_id)])
    assert shown.exit_code == 0, shown.output
    assert "[bold]le site[/bold]" in shown.output  # Rich markup shown literally, not interpreted
    listed = CliRunner().invoke(app, ["--config", str(config), "inbox", "list", "--json"])
    assert json.loads(listed.output)[0]["last_message"]["text"] == hostile
