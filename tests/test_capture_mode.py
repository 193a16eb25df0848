"""Capture mode is visibly capture mode (issue #10, item 13): `captured`, never `sent`.

A delivery handed to a capture-mode channel is stored, not sent: its row says `captured` in the
outbox, `deliveries`, `incident show` and the inbox; `broadcaster captured` shows what would have
been sent, per channel and recipient, so a team can rehearse without reading SQLite.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from typer.testing import CliRunner

from broadcaster.cli import app
from broadcaster.db import SessionFactory
from broadcaster.delivery.dispatch import ChannelWorker
from broadcaster.delivery.runtimes import build_channels
from tests.conftest import make_settings
from tests.e2e.helpers import deliver, draft, follow_up, live_settings, open_, people, subscribe
from tests.peers.telegram import TelegramPeer
from tests.test_inbox_actions import customer_writes, inbound
from tests.test_inbox_cli import with_sessions

runner = CliRunner()
GOOD = "Le paiement échoue pour une partie des clients. Nous sommes désolés, nous enquêtons."


async def test_a_capture_channel_delivery_is_captured_and_a_live_one_sent(
    database_url: str, sessions: SessionFactory
) -> None:
    """Telegram live against its peer, every other channel in capture mode (no credentials)."""
    with TelegramPeer() as telegram:
        settings = live_settings(database_url, smtp=None, telegram=telegram)
        await subscribe(sessions, settings, people(4))  # 2 e-mail, 2 Telegram
        opened = await open_(
            sessions, settings, draft("investigating", GOOD, "Payment fails. Sorry."), force=True
        )
        assert await deliver(sessions, settings, opened) == {
            "telegram": {"sent": 3},  # two chats and the public channel: really sent
            "email": {"captured": 2},
            "twitter": {"captured": 1},
            "facebook": {"captured": 1},
            "push": {"captured": 1},
            "blog": {"captured": 1},
        }
        assert opened.incident.id is not None
        again = await follow_up(
            sessions,
            settings,
            opened.incident.id,
            draft("identified", "Cause trouvée, correctif en cours.", "Cause found, fix on its way."),
        )
        # A threading channel in capture mode continues its story from the captured post.
        counts = await deliver(sessions, settings, again)
        assert counts["twitter"] == {"captured": 1} and counts["telegram"] == {"sent": 3}


def _open(title: str) -> dict[str, object]:
    opened = runner.invoke(
        app, ["incident", "open", "--title", title, "-c", "checkout", "-m", GOOD, "--eta", "30m", "--json"]
    )
    assert opened.exit_code == 0, opened.output
    return dict(json.loads(opened.output))


def test_deliveries_show_and_captured_tell_capture_mode_apart(workdir: Path) -> None:
    (workdir / "customers.csv").write_text(
        "email,telegram_chat_id,locale,components\na@example.com,1001,fr,\nb@example.com,,en,\n",
        encoding="utf-8",
    )
    assert runner.invoke(app, ["subscribers", "import", "customers.csv"]).exit_code == 0
    assert _open("Paiement indisponible")["deliveries"] == {
        c: {"captured": n}
        for c, n in {"blog": 1, "email": 2, "facebook": 1, "push": 1, "telegram": 1, "twitter": 1}.items()
    }
    _open("Site lent")

    report = json.loads(runner.invoke(app, ["deliveries", "1", "--json"]).output)
    assert report["by_channel"]["email"] == {"captured": 2} and report["problems"] == []
    table = runner.invoke(app, ["deliveries", "1"]).output
    assert "captured" in table and "not sent" in table
    shown = json.loads(runner.invoke(app, ["incident", "show", "1", "--json"]).output)
    assert all(set(per) == {"captured"} for per in shown["deliveries"].values())

    everything = json.loads(runner.invoke(app, ["captured", "--json"]).output)
    assert [e["incident_id"] for e in everything] == [2] * 7 + [1] * 7  # newest incident first
    mails = json.loads(
        runner.invoke(app, ["captured", "--incident", "1", "--channel", "email", "--json"]).output
    )
    by_recipient = {m["recipient"]: m for m in mails}
    assert set(by_recipient) == {"a@example.com", "b@example.com"}
    french, english = by_recipient["a@example.com"], by_recipient["b@example.com"]
    assert french["what"] == "broadcast" and french["incident"] == "Paiement indisponible"
    assert french["title"].startswith("[Maison Exemple]") and GOOD in french["parts"][0]
    assert "<html" in french["html"].lower() and "/unsubscribe/" in french["parts"][0]
    assert "Payment" not in french["parts"][0] and english["parts"][0] != french["parts"][0]
    telegram = json.loads(runner.invoke(app, ["captured", "--channel", "telegram", "--json"]).output)
    assert {(m["incident_id"], m["recipient"]) for m in telegram} == {(2, "1001"), (1, "1001")}

    human = runner.invoke(app, ["captured", "--incident", "1"])
    assert human.exit_code == 0, human.output
    assert "Captured messages: nothing was sent (Europe/Paris)" in human.output
    assert "email → a@example.com" in human.output and "telegram → 1001" in human.output
    assert "Le paiement échoue pour une partie des clients." in human.output
    limited = runner.invoke(app, ["captured", "--limit", "3"]).output
    assert "11 more not shown" in limited

    unknown = runner.invoke(app, ["captured", "--channel", "sms"])
    assert unknown.exit_code == 2 and "--channel sms: unknown channel" in unknown.output
    missing = runner.invoke(app, ["captured", "--incident", "9"])
    assert missing.exit_code == 2 and "no incident #9" in missing.output


async def _capture_answers(sessions: SessionFactory, database_url: str) -> None:
    """Run the capture-mode Telegram worker until the queued answer is stored."""
    settings = make_settings(database_url)
    runtime = build_channels(settings, sessions)["telegram"]
    assert not runtime.live
    worker = ChannelWorker("telegram", runtime, sessions, settings.dispatch, settings.server.public_base_url)
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        while worker.sent == 0:  # progress observed, never timed (the worker polls every 50 ms)
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=30)


def test_an_answer_in_capture_mode_says_captured_in_the_inbox(workdir: Path) -> None:
    url = f"sqlite+aiosqlite:///{workdir / 'data' / 'broadcaster.db'}"
    (cid,) = with_sessions(url, lambda s: customer_writes(s, inbound("42:1", "le paiement échoue", key="42")))
    replied = runner.invoke(app, ["inbox", "reply", str(cid), "Nous regardons, désolés.", "--as", "Camille"])
    assert replied.exit_code == 0, replied.output
    with_sessions(url, lambda sessions: _capture_answers(sessions, url))

    shown = runner.invoke(app, ["inbox", "show", str(cid)])
    assert "→ Camille: Nous regardons, désolés. [captured]" in shown.output
    (answer,) = [
        m
        for m in json.loads(runner.invoke(app, ["inbox", "show", str(cid), "--json"]).output)["messages"]
        if m["direction"] == "out"
    ]
    assert answer["delivery_status"] == "captured"
    (stored,) = json.loads(runner.invoke(app, ["captured", "--json"]).output)
    assert (stored["what"], stored["conversation_id"], stored["recipient"]) == ("answer", cid, "42")
    assert stored["parts"] == ["Nous regardons, désolés."]
