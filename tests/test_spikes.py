"""Spike detection: many "is it down?" messages with no incident open draft one incident and alert the staff.

Messages go through the real path (stored as a webhook would, then filed by the inbox) and the
clock is injected: no sleeps. The alert is delivered to local SMTP and Bot API peers.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlmodel import col, select

from broadcaster.compose.render import Composer
from broadcaster.config import Settings
from broadcaster.db import SessionFactory
from broadcaster.delivery.dispatch import Dispatcher
from broadcaster.delivery.runtimes import build_channels
from broadcaster.delivery.staff_alerts import staff_messages
from broadcaster.inbox.filing import file_pending
from broadcaster.inbox.inbound import store_inbound
from broadcaster.inbox.spikes import draft_if_spike
from broadcaster.message import RenderedMessage
from broadcaster.models import Conversation, Delivery, Incident, Message
from broadcaster.publishing.incidents import publish_draft, resolve_incident
from channels.base import InboundMessage
from channels.limits import visible_length
from tests.conftest import make_settings
from tests.e2e.helpers import TOKEN, draft, open_
from tests.peers.smtp import SmtpPeer
from tests.peers.telegram import TelegramPeer

NOW = datetime(2026, 11, 22, 13, 0, tzinfo=UTC)
ON_CALL = "oncall@shop.example"
STAFF_CHAT = "-1001234567890"
STAFF = {"email": ON_CALL, "telegram_chat_id": STAFF_CHAT}
QUESTION = "le site est en panne ?"
WAIT = 30.0


def spike_settings(database_url: str, **sections: Any) -> Settings:
    return make_settings(database_url, staff=STAFF, **sections)


async def report(
    sessions: SessionFactory,
    count: int,
    *,
    at: datetime,
    batch: str,
    text: str = QUESTION,
    sent_at: datetime | None = None,
) -> None:
    """`count` customers (one Telegram chat each) write `text`, a second apart, the last one reaching
    us at `at`; `sent_at` is what their clocks say (default: the same)."""
    for i in range(count):
        reached = at - timedelta(seconds=count - 1 - i)
        message = InboundMessage(
            channel="telegram",
            external_id=f"{batch}-{i}:1",
            conversation_key=f"{batch}-{i}",
            customer_handle=f"client_{batch}_{i}",
            text=text,
            received_at=sent_at or reached,
        )
        await store_inbound(sessions, [message], now=reached)
    assert await file_pending(sessions) == count


async def check(sessions: SessionFactory, settings: Settings, now: datetime = NOW) -> int | None:
    async with sessions() as session:
        return await draft_if_spike(session, settings, now)


async def drafts(sessions: SessionFactory) -> list[Incident]:
    async with sessions() as session:
        statement = select(Incident).where(Incident.status == "draft").order_by(col(Incident.id))
        return list(await session.exec(statement))


async def alerts(sessions: SessionFactory) -> list[Delivery]:
    async with sessions() as session:
        statement = (
            select(Delivery)
            .where(col(Delivery.update_id).is_(None), col(Delivery.message_id).is_(None))
            .order_by(col(Delivery.id))
        )
        return list(await session.exec(statement))


async def test_a_spike_drafts_one_incident_and_alerts_the_staff_once(
    database_url: str, sessions: SessionFactory
) -> None:
    settings = spike_settings(database_url)
    await report(sessions, 11, at=NOW, batch="a")
    long_text = "Impossible de payer, ça marche pas depuis ce matin. " * 10
    await report(sessions, 1, at=NOW, batch="b", text=long_text)

    draft_id = await check(sessions, settings)

    assert draft_id is not None
    (incident,) = await drafts(sessions)
    assert incident.id == draft_id
    assert (incident.status, incident.impact, incident.components) == ("draft", "major", [])
    assert incident.title == "Signalements clients : 12 messages en 5 min"
    samples = [line for line in incident.notes.splitlines() if line.startswith("- ")]
    assert len(samples) == 10
    assert "telegram · client_a_10: le site est en panne ?" in samples[-2]
    assert len(samples[-1]) < 260 and samples[-1].endswith("…")  # the long message, cut at a word
    sent = await alerts(sessions)
    assert [(d.channel, d.target, d.status) for d in sent] == [
        ("email", ON_CALL, "pending"),
        ("telegram", STAFF_CHAT, "pending"),
    ]
    email = RenderedMessage.from_json(sent[0].payload)
    assert "12 signalements clients en 5 min" in email.title and f"#{draft_id}" in email.title
    assert f'broadcaster incident publish {draft_id} --title "…"' in email.text
    assert "--message" in email.text and "client_a_3" in email.text

    assert await check(sessions, settings) is None  # right after: nothing new
    assert await check(sessions, settings, NOW + timedelta(minutes=1)) is None
    assert len(await drafts(sessions)) == 1
    assert len(await alerts(sessions)) == 2


async def test_ten_reports_are_not_a_spike_eleven_are(database_url: str, sessions: SessionFactory) -> None:
    settings = spike_settings(database_url)
    await report(sessions, 10, at=NOW, batch="a")
    assert await check(sessions, settings) is None
    await report(sessions, 1, at=NOW, batch="b")
    assert await check(sessions, settings) is not None


async def test_reports_older_than_the_window_and_other_intents_do_not_count(
    database_url: str, sessions: SessionFactory
) -> None:
    settings = spike_settings(database_url)
    await report(sessions, 8, at=NOW - timedelta(minutes=5, seconds=1), batch="old")
    await report(sessions, 8, at=NOW, batch="thanks", text="Merci beaucoup pour votre travail !")
    await report(sessions, 10, at=NOW, batch="now")
    assert await check(sessions, settings) is None
    assert await drafts(sessions) == [] and await alerts(sessions) == []


async def test_senders_clocks_in_9999_or_2099_neither_hide_a_spike_nor_raise_old_ones_again(
    database_url: str, sessions: SessionFactory
) -> None:
    """Windows count by when a message reached us: the sender's `date` is only theirs to show."""
    settings = spike_settings(database_url)
    far = datetime(9999, 12, 31, 23, 59, tzinfo=UTC)  # Paris time of it is past year 9999
    await report(sessions, 1, at=NOW - timedelta(minutes=2), batch="far", sent_at=far)
    await report(
        sessions, 11, at=NOW - timedelta(hours=2), batch="old", sent_at=datetime(2099, 1, 1, tzinfo=UTC)
    )
    assert await check(sessions, settings) is None  # two hours old: no spike, whatever their clocks say
    await report(sessions, 11, at=NOW, batch="now")
    first = await check(sessions, settings)
    assert first is not None  # the real spike alerts, counting the year-9999 report
    assert (await drafts(sessions))[0].notes.startswith("12 messages")
    assert await check(sessions, settings, NOW + timedelta(minutes=61)) is None  # nothing new: no re-alert
    assert len(await alerts(sessions)) == 2


async def test_no_draft_while_an_incident_is_open(database_url: str, sessions: SessionFactory) -> None:
    settings = spike_settings(database_url)
    opening = draft("investigating", "Le paiement échoue. Désolés, on enquête.", "Payment fails. Sorry.")
    await open_(sessions, settings, opening, force=True)
    await report(sessions, 12, at=NOW, batch="a")
    assert await check(sessions, settings) is None
    assert await drafts(sessions) == [] and await alerts(sessions) == []


async def test_a_new_draft_only_after_the_cooldown_even_with_the_first_one_still_there(
    database_url: str, sessions: SessionFactory
) -> None:
    """Decision: a draft nobody published yet does not silence the detector for ever.

    Within `spike_cooldown_minutes` (60) of the last draft, reports only add up; after it, a spike
    that goes on is news again (the first draft may have been missed): a second draft and alert.
    """
    settings = spike_settings(database_url)
    await report(sessions, 12, at=NOW, batch="a")
    first = await check(sessions, settings)
    later = NOW + timedelta(minutes=30)
    await report(sessions, 12, at=later, batch="b")
    assert await check(sessions, settings, later) is None
    after_cooldown = NOW + timedelta(minutes=61)
    await report(sessions, 12, at=after_cooldown, batch="c")
    second = await check(sessions, settings, after_cooldown)
    assert first is not None and second is not None and second != first
    assert [i.id for i in await drafts(sessions)] == [first, second]
    assert len(await alerts(sessions)) == 4
    assert await check(sessions, settings, after_cooldown + timedelta(minutes=1)) is None


async def test_two_nodes_checking_at_once_draft_once(database_url: str, sessions: SessionFactory) -> None:
    """Runs on SQLite and, with BROADCASTER_TEST_DATABASE_URL, on PostgreSQL (advisory lock)."""
    settings = spike_settings(database_url)
    await report(sessions, 12, at=NOW, batch="a")
    results = await asyncio.gather(*(check(sessions, settings) for _ in range(4)))
    assert len([r for r in results if r is not None]) == 1
    assert len(await drafts(sessions)) == 1
    assert len(await alerts(sessions)) == 2


async def test_without_a_staff_address_the_draft_is_made_and_a_warning_logged(
    database_url: str, sessions: SessionFactory, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(database_url, brand={"default_locale": "en"})
    await report(sessions, 12, at=NOW, batch="a")
    with caplog.at_level(logging.WARNING, logger="broadcaster.delivery.staff_alerts"):
        draft_id = await check(sessions, settings)
    assert draft_id is not None
    (incident,) = await drafts(sessions)
    assert incident.title == "Customer reports: 12 messages in 5 min"
    assert await alerts(sessions) == []
    assert "no staff address configured" in caplog.text


def test_staff_messages_escape_split_and_skip_disabled_channels() -> None:
    settings = make_settings(
        "sqlite+aiosqlite:///unused.db", staff=STAFF, channels={"email": {"enabled": False}}
    )
    text = "<b>client</b> & co [bold]x[/bold]\n\n" + ("mot " * 1500)
    messages = staff_messages(settings, "Pic de signalements " + "très long " * 20, text)
    assert list(messages) == [("telegram", STAFF_CHAT)]  # e-mail is disabled
    telegram = messages[("telegram", STAFF_CHAT)]
    assert len(telegram.parts) == 2 and all(visible_length(p) <= 4096 for p in telegram.parts)
    assert telegram.parts[0].startswith("<b>Pic de signalements")
    assert "&lt;b&gt;client&lt;/b&gt; &amp; co [bold]x[/bold]" in telegram.parts[0]
    email = staff_messages(spike_settings("sqlite+aiosqlite:///unused.db"), "Sujet " * 30, text)
    assert len(email[("email", ON_CALL)].title) <= 78 and email[("email", ON_CALL)].parts == (text,)
    with pytest.raises(ValueError, match="needs a subject"):
        staff_messages(settings, "  ", text)


@pytest.mark.slow
async def test_the_alert_reaches_the_on_call_mailbox_and_the_staff_chat(
    database_url: str, sessions: SessionFactory
) -> None:
    with SmtpPeer() as smtp, TelegramPeer() as telegram:
        settings = spike_settings(
            database_url,
            channels={
                "email": {"host": smtp.host, "port": smtp.port, "security": "none"},
                "telegram": {"token": TOKEN, "base_url": telegram.base_url, "per_chat_interval_seconds": 0},
            },
        )
        await report(sessions, 11, at=NOW, batch="a")
        await report(sessions, 1, at=NOW, batch="b", text="<script>x</script> le site est en panne ?")
        draft_id = await check(sessions, settings)
        assert draft_id is not None
        runtimes = {
            name: runtime
            for name, runtime in build_channels(settings, sessions).items()
            if name in ("email", "telegram")
        }
        dispatcher = Dispatcher(sessions, runtimes, settings.dispatch, settings.server.public_base_url)
        stop = asyncio.Event()
        running = asyncio.create_task(dispatcher.run(stop))
        try:
            assert await asyncio.to_thread(smtp.wait_for, 1, WAIT)
            assert await asyncio.to_thread(telegram.wait_for, 1, WAIT)
        finally:
            stop.set()
            await running
            for runtime in runtimes.values():
                await runtime.channel.aclose()

    command = f"broadcaster incident publish {draft_id}"
    ((_sender, recipients, email),) = smtp.messages
    assert recipients == [ON_CALL]
    assert "12 signalements clients en 5 min" in email["Subject"]
    assert command in email.get_body(("plain",)).get_content()
    (message,) = telegram.messages
    assert message["chat_id"] == STAFF_CHAT and message["parse_mode"] == "HTML"
    assert command in message["text"] and "&lt;script&gt;" in message["text"]
    assert {d.status for d in await alerts(sessions)} == {"sent"}


async def test_the_customers_who_reported_the_spike_follow_the_published_incident(
    database_url: str, sessions: SessionFactory
) -> None:
    settings = spike_settings(database_url)
    await report(sessions, 12, at=NOW, batch="s")
    drafted = await check(sessions, settings)
    assert drafted is not None
    composer = Composer(default_locale="fr")
    async with sessions() as session:
        published = await publish_draft(
            session, settings, composer, drafted, title="Paiement indisponible", impact="major",
            components=["payment"], draft=draft("investigating", "Le paiement échoue, désolés.", "Sorry."),
            force=True,
        )  # fmt: skip
    async with sessions() as session:
        linked = list(await session.exec(select(Conversation.incident_id)))
        told = list(await session.exec(select(Message).where(Message.direction == "out")))
    assert linked == [published.incident.id] * 12
    assert len(told) == 12 and all("incident en cours" in m.text for m in told)  # told at publication
    async with sessions() as session:
        await resolve_incident(
            session,
            settings,
            composer,
            drafted,
            draft("resolved", "Le paiement refonctionne.", "Fixed."),
            force=True,
        )
    async with sessions() as session:
        answers = list(await session.exec(select(Message).where(Message.direction == "out")))
    assert len(answers) == 24  # each reporter is also told it is fixed, in their own thread
    assert all("résolu" in m.text for m in answers[12:])
