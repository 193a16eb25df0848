"""`broadcaster deliveries requeue`: dead rows go out once the relay is back, sent ones never again."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select
from typer.testing import CliRunner

from broadcaster.cli import app
from broadcaster.db import SessionFactory
from broadcaster.delivery import outbox
from broadcaster.delivery.subscribers import NewSubscriber
from broadcaster.models import Delivery, Subscription
from tests.e2e.helpers import draft, live_settings, open_, subscribe
from tests.e2e.test_faults import EN, FR, dispatching, rows, until
from tests.peers.smtp import SmtpPeer
from tests.peers.telegram import TelegramPeer

pytestmark = pytest.mark.slow
EMAILS = [f"client{i}@example.com" for i in range(4)]
CHATS = ["4241", "4242"]


async def broadcaster(tmp_path: Path, database_url: str, *args: str) -> tuple[int, str]:
    """The real command line on the test's database, off the event loop (it runs its own)."""
    config = tmp_path / "config.toml"
    config.write_text(f'[database]\nurl = "{database_url}"\n', encoding="utf-8")
    result = await asyncio.to_thread(CliRunner().invoke, app, ["--config", str(config), *args])
    return result.exit_code, result.output


async def everything(sessions: SessionFactory) -> list[tuple[Any, ...]]:
    async with sessions() as session:
        found = await session.exec(select(Delivery).order_by(Delivery.id))  # type: ignore[arg-type]
        return [(d.id, d.channel, d.target, d.status, d.attempts, d.last_error, d.sent_at) for d in found]


async def settled(sessions: SessionFactory) -> bool:
    return all(d[3] in outbox.TERMINAL for d in await everything(sessions))


async def test_dead_rows_requeued_after_the_relay_recovers_are_delivered_once_and_nothing_else_is_resent(
    tmp_path: Path, database_url: str, sessions: SessionFactory, smtp: SmtpPeer, telegram: TelegramPeer
) -> None:
    settings = live_settings(database_url, smtp, telegram, max_attempts=2)
    people = [NewSubscriber(email=e, line=i + 2) for i, e in enumerate(EMAILS)]
    people += [NewSubscriber(telegram_chat_id=c, line=i + 10) for i, c in enumerate(CHATS)]
    await subscribe(sessions, settings, people)
    smtp.refuse_all()
    published = await open_(sessions, settings, draft("investigating", FR, EN))
    update_id = published.update.id
    assert update_id is not None
    async with dispatching(sessions, settings):
        await until(lambda: settled(sessions))
        assert {d.status for d in await rows(sessions, "email")} == {"dead"}
        telegram_before = {
            (d.target, d.provider_message_id, d.sent_at) for d in await rows(sessions, "telegram")
        }
        assert len(telegram_before) == 3 and len(telegram.messages) == 3  # two chats and the channel
        smtp.recover()

        code, output = await broadcaster(
            tmp_path, database_url, "deliveries", "requeue", str(update_id), "--json"
        )
        assert code == 0, output
        assert json.loads(output) == {
            "update_id": update_id,
            "dry_run": False,
            "requeued": {"email": {"dead": len(EMAILS)}},
            "skipped_inactive": {},
        }

        async def emails_sent() -> bool:
            return all(d.status == "sent" for d in await rows(sessions, "email"))

        await until(emails_sent)
    received = Counter(rcpt for _, rcpts, _ in smtp.messages for rcpt in rcpts)
    assert received == Counter(EMAILS)  # each dead row delivered once
    assert all(d.attempts == 1 and d.last_error == "" for d in await rows(sessions, "email"))
    assert len(telegram.messages) == 3  # the delivered channel was neither touched nor resent
    assert {
        (d.target, d.provider_message_id, d.sent_at) for d in await rows(sessions, "telegram")
    } == telegram_before

    code, output = await broadcaster(tmp_path, database_url, "deliveries", "requeue", str(update_id))
    assert code == 0 and "nothing to requeue" in output  # sent rows are never requeued
    assert len(smtp.messages) == len(EMAILS)


async def test_channel_and_status_choose_the_rows_and_a_deactivated_subscriber_stays_out(
    tmp_path: Path, database_url: str, sessions: SessionFactory, smtp: SmtpPeer, telegram: TelegramPeer
) -> None:
    settings = live_settings(database_url, smtp, telegram, max_attempts=2)
    await subscribe(
        sessions,
        settings,
        [
            NewSubscriber(email=EMAILS[0], line=2),
            *(NewSubscriber(telegram_chat_id=c, line=3 + i) for i, c in enumerate(CHATS)),
        ],
    )
    smtp.refuse_all()
    telegram.block(CHATS[1])  # permanent: failed, subscription deactivated
    telegram.known_chats = set(CHATS)  # the public channel's post: 400 chat not found, failed
    published = await open_(sessions, settings, draft("investigating", FR, EN))
    update = str(published.update.id)
    async with dispatching(sessions, settings):
        await until(lambda: settled(sessions))
    settled_rows = await everything(sessions)
    assert Counter(d[3] for d in settled_rows if d[1] in ("email", "telegram")) == {
        "dead": 1,
        "failed": 2,
        "sent": 1,
    }

    code, output = await broadcaster(
        tmp_path, database_url, "deliveries", "requeue", update, "--channel", "telegram"
    )
    assert code == 0 and "nothing to requeue" in output  # Telegram has no dead row
    code, output = await broadcaster(
        tmp_path,
        database_url,
        "deliveries",
        "requeue",
        update,
        "--status",
        "failed",
        "--status",
        "dead",
        "--dry-run",
    )
    assert code == 0, output
    assert "Would requeue" in output and "email" in output and "telegram" in output
    assert await everything(sessions) == settled_rows  # a dry run writes nothing

    telegram.known_chats = None  # the channel now exists; chat 4242 still blocks the bot
    args = ("deliveries", "requeue", update, "--status", "failed", "--channel", "telegram", "--json")
    code, output = await broadcaster(tmp_path, database_url, *args)
    assert code == 0, output
    report = json.loads(output)
    assert report["requeued"] == {"telegram": {"failed": 1}}  # the channel's post only
    assert report["skipped_inactive"] == {"telegram": {"failed": 1}}  # the blocked chat
    async with dispatching(sessions, settings):

        async def posted() -> bool:
            return all(d.status != "pending" for d in await rows(sessions, "telegram"))

        await until(posted)
    by_target = {d.target: d for d in await rows(sessions, "telegram")}
    assert by_target["@shop_status"].status == "sent"
    assert by_target[CHATS[1]].status == "failed" and "blocked" in by_target[CHATS[1]].last_error
    assert [m["chat_id"] for m in telegram.messages].count("@shop_status") == 1
    assert [d.status for d in await rows(sessions, "email")] == ["dead"]  # not chosen, not touched
    async with sessions() as session:
        inactive = [s.address for s in await session.exec(select(Subscription)) if not s.active]
    assert inactive == [CHATS[1]]  # nothing reactivated


async def test_a_requeue_days_after_the_broadcast_gets_a_fresh_retry_window(
    tmp_path: Path, database_url: str, sessions: SessionFactory, smtp: SmtpPeer
) -> None:
    """The relay is fixed two days later but answers 451 once more: the row retries, not dead at once."""
    settings = live_settings(
        database_url, smtp, None, max_attempts=None, retry_window_seconds=3600, backoff_base_seconds=0.05
    )
    await subscribe(sessions, settings, [NewSubscriber(email=EMAILS[0], line=2)])
    smtp.refuse_all()
    published = await open_(sessions, settings, draft("investigating", FR, EN))
    async with dispatching(sessions, live_settings(database_url, smtp, None, max_attempts=1)):
        await until(lambda: settled(sessions))
    async with sessions() as session:  # the broadcast was two days ago
        for row in await session.exec(select(Delivery)):
            row.created_at -= timedelta(days=2)
            session.add(row)
        await session.commit()
    smtp.recover()
    smtp.fail_next(1)

    code, output = await broadcaster(
        tmp_path, database_url, "deliveries", "requeue", str(published.update.id)
    )
    assert code == 0, output
    async with dispatching(sessions, settings):
        await until(lambda: settled(sessions))
    [row] = await rows(sessions, "email")
    assert (row.status, row.attempts) == ("sent", 2)  # one more 451, then sent: not dead past the old window
    assert [rcpts for _, rcpts, _ in smtp.messages] == [[EMAILS[0]]]


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (("999",), "no update #999"),
        (("1", "--status", "sent"), "--status 'sent': only dead or failed rows can be requeued"),
        (("1", "--channel", "fax"), "--channel 'fax': no such channel"),
    ],
    ids=["unknown-update", "sent-status", "unknown-channel"],
)
async def test_a_wrong_requeue_names_what_is_wrong_and_writes_nothing(
    tmp_path: Path,
    database_url: str,
    sessions: SessionFactory,
    smtp: SmtpPeer,
    args: tuple[str, ...],
    error: str,
) -> None:
    settings = live_settings(database_url, smtp, None, max_attempts=1)
    await subscribe(sessions, settings, [NewSubscriber(email=EMAILS[0], line=2)])
    smtp.refuse_all()
    await open_(sessions, settings, draft("investigating", FR, EN))
    async with dispatching(sessions, settings):
        await until(lambda: settled(sessions))
    before = await everything(sessions)
    code, output = await broadcaster(tmp_path, database_url, "deliveries", "requeue", *args)
    assert code == 2 and error in output and "Traceback" not in output
    assert len(output.strip().splitlines()) == 1
    assert await everything(sessions) == before
