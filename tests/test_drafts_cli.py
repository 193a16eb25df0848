"""Drafts on the command line: list and show them, publish one as an incident, or discard it.

The draft comes from the real path (customer messages stored, filed, then the spike detector);
every channel is in capture mode (the example config), so publishing delivers for real locally.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from datetime import timedelta
from pathlib import Path

from typer.testing import CliRunner

from broadcaster.cli import app
from broadcaster.config import load_settings
from broadcaster.db import create_engine, session_factory
from broadcaster.inbox.filing import file_pending
from broadcaster.inbox.inbound import store_inbound
from broadcaster.inbox.spikes import draft_if_spike
from broadcaster.models import utcnow
from channels.base import InboundMessage

runner = CliRunner()
GOOD = "Le paiement échoue pour une partie des clients. Nous sommes désolés, nous enquêtons."
HOSTILE = "[bold]le site[/bold] est en panne ? <b>vraiment</b>"


def count(workdir: Path, sql: str) -> int:
    with sqlite3.connect(workdir / "data" / "broadcaster.db") as db:
        return int(db.execute(sql).fetchone()[0])


def customers_write(workdir: Path, texts: list[str], *, batch: str) -> None:
    """Customers write to the Telegram bot; the inbox files their messages."""

    async def write() -> None:
        engine = create_engine(load_settings(workdir / "config.toml").database.url)
        sessions = session_factory(engine)
        now = utcnow()
        messages = [
            InboundMessage(
                channel="telegram",
                external_id=f"{batch}{i}:1",
                conversation_key=f"{batch}{i}",
                customer_handle=f"client_{batch}{i}",
                text=text,
                received_at=now - timedelta(seconds=i),
            )
            for i, text in enumerate(texts)
        ]
        await store_inbound(sessions, messages)
        await file_pending(sessions)
        await engine.dispose()

    asyncio.run(write())


def spike(workdir: Path, hostile: str = HOSTILE) -> int:
    """12 customers ask whether the site is down, the last one in `hostile` words: a draft incident."""
    customers_write(workdir, ["le site est en panne ?"] * 11 + [hostile], batch="s")

    async def detect() -> int | None:
        settings = load_settings(workdir / "config.toml")
        engine = create_engine(settings.database.url)
        async with session_factory(engine)() as session:
            draft_id = await draft_if_spike(session, settings, utcnow())
        await engine.dispose()
        return draft_id

    draft_id = asyncio.run(detect())
    assert draft_id is not None
    return draft_id


def invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def test_list_shows_drafts_and_show_their_notes_as_written(workdir: Path) -> None:
    draft_id = spike(workdir)
    code, listed = invoke("incident", "list")
    assert code == 0, listed
    assert "draft (not public)" in listed and "Signalements clients" in listed
    code, shown = invoke("incident", "show", str(draft_id))
    assert code == 0, shown
    assert HOSTILE in shown  # Rich markup in customer text is shown, not interpreted
    assert f"broadcaster incident publish {draft_id}" in shown
    (as_json,) = json.loads(invoke("incident", "list", "--json")[1])
    assert as_json["status"] == "draft" and HOSTILE in as_json["notes"]


def test_terminal_sequences_in_the_spike_samples_are_shown_never_sent(workdir: Path) -> None:
    attack = "\x1b]52;c;Y3VybCBldmlsLmV4YW1wbGUgfCBzaA==\x07\x1b[2J le site est en panne ?"  # OSC 52, clear
    draft_id = spike(workdir, attack)
    code, shown = invoke("incident", "show", str(draft_id))
    assert code == 0, shown
    assert "\x1b" not in shown and "\x07" not in shown
    assert "\\x1b]52;c;" in shown and "\\x1b[2J" in shown


def test_publishing_a_draft_opens_the_incident_and_delivers_its_first_update(workdir: Path) -> None:
    draft_id = spike(workdir)
    code, output = invoke(
        "incident", "publish", str(draft_id), "--title", "Paiement indisponible", "-c", "checkout",
        "-m", GOOD, "--eta", "30m", "--next-update", "20m", "--translation", "en:Payment fails. Sorry.",
        "--json",
    )  # fmt: skip
    assert code == 0, output
    published = json.loads(output)
    assert published["incident_id"] == draft_id and published["status"] == "investigating"
    public = ("blog", "facebook", "push", "twitter")  # no subscribers: the public channels
    assert published["deliveries"] == {channel: {"captured": 1} for channel in public}
    shown = json.loads(invoke("incident", "show", str(draft_id), "--json")[1])
    assert (shown["title"], shown["status"], shown["components"]) == (
        "Paiement indisponible",
        "investigating",
        ["checkout"],
    )
    assert len(shown["updates"]) == 1 and HOSTILE in shown["notes"]  # notes stay, for the staff
    assert "draft (not public)" not in invoke("incident", "list")[1]
    code, again = invoke("incident", "publish", str(draft_id), "-c", "checkout", "-m", GOOD)
    assert code == 2 and f"incident #{draft_id} is not a draft (it is investigating)" in again


def test_publish_refuses_unknown_ids_open_incidents_and_bad_input_writing_nothing(workdir: Path) -> None:
    draft_id = spike(workdir)  # an open incident would explain the reports: the draft comes first
    code, output = invoke("incident", "open", "--title", "Paiement", "-c", "checkout", "-m", GOOD, "--force")
    assert code == 0, output
    opened = str(draft_id + 1)
    before = [count(workdir, f"SELECT count(*) FROM {t}") for t in ("incident_update", "delivery")]
    refusals = [
        (["99", "-c", "checkout", "-m", GOOD], "no incident #99"),
        ([opened, "-c", "checkout", "-m", GOOD], f"incident #{opened} is not a draft (it is investigating)"),
        ([str(draft_id), "-m", GOOD], "name at least one affected component"),  # the draft has none
        ([str(draft_id), "-c", "teleporter", "-m", GOOD], "unknown component(s): teleporter"),
        ([str(draft_id), "-c", "checkout", "-m", GOOD, "--impact", "apocalyptic"], "unknown impact"),
        ([str(draft_id), "-c", "checkout", "-m", GOOD, "--status", "resolved"], "unknown status"),
        ([str(draft_id), "-c", "checkout", "-m", GOOD, "--title", " "], "the incident needs a title"),
        ([str(draft_id), "-c", "checkout", "-m", "Vérifiez votre connexion, c'est garanti."], "--force"),
    ]
    for args, expected in refusals:
        code, output = invoke("incident", "publish", *args)
        assert code == 2, (args, output)
        assert expected in output, (args, output)
        assert "Traceback" not in output
    after = [count(workdir, f"SELECT count(*) FROM {t}") for t in ("incident_update", "delivery")]
    assert after == before
    assert count(workdir, f"SELECT count(*) FROM incident WHERE id = {draft_id} AND status = 'draft'") == 1
    code, output = invoke("incident", "update", str(draft_id), "--status", "identified", "-m", GOOD)
    assert code == 2 and "is a draft: publish it first" in output


def test_discard_deletes_only_drafts(workdir: Path) -> None:
    draft_id = spike(workdir)
    code, output = invoke("incident", "open", "--title", "Paiement", "-c", "checkout", "-m", GOOD, "--force")
    assert code == 0, output
    code, output = invoke("incident", "discard", str(draft_id + 1))
    assert code == 2 and f"incident #{draft_id + 1} is not a draft" in output
    code, output = invoke("incident", "discard", str(draft_id), "--json")
    assert code == 0, output
    discarded = json.loads(output)
    assert discarded["incident_id"] == draft_id and discarded["discarded"] is True
    assert count(workdir, "SELECT count(*) FROM incident") == 1
    code, output = invoke("incident", "discard", str(draft_id))
    assert code == 2 and f"no incident #{draft_id}" in output


def test_no_answer_conversations_is_stored_and_honoured_at_resolution(workdir: Path) -> None:
    code, output = invoke(
        "incident", "open", "--title", "Paiement", "-c", "checkout", "-m", GOOD, "--force",
        "--no-answer-conversations",
    )  # fmt: skip
    assert code == 0, output
    code, output = invoke("incident", "open", "--title", "Livraison", "-c", "website", "-m", GOOD, "--force")
    assert code == 0, output
    stored = {i["id"]: i["answer_conversations"] for i in json.loads(invoke("incident", "list", "--json")[1])}
    assert stored == {1: False, 2: True}
    customers_write(workdir, ["le site est en panne ?"], batch="q")  # linked to the latest open: #2
    answers = "SELECT count(*) FROM message WHERE direction = 'out'"
    resolved = ["-m", "Tout fonctionne. Merci pour votre patience.", "--force"]
    code, output = invoke("incident", "resolve", "2", *resolved, "--no-answer-conversations")
    assert code == 0, output
    assert count(workdir, answers) == 0
    customers_write(workdir, ["toujours en panne ?"], batch="r")  # now about the open #1, opted out
    code, output = invoke("incident", "resolve", "1", *resolved)
    assert code == 0, output
    assert count(workdir, answers) == 0
    code, output = invoke(
        "incident", "open", "--title", "Suivi", "-c", "order-tracking", "-m", GOOD, "--force"
    )
    assert code == 0, output
    customers_write(workdir, ["le suivi est en panne ?"], batch="t")  # about #3, which answers
    code, output = invoke("incident", "resolve", "3", *resolved)
    assert code == 0, output
    assert count(workdir, answers) == 1
