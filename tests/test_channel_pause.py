"""`broadcaster deliveries` says which channel its breaker has paused, since when, and the next probe."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from typer.testing import CliRunner

from broadcaster.cli import app
from broadcaster.db import SessionFactory
from broadcaster.delivery import channel_pause
from tests.test_inbox_cli import with_sessions

runner = CliRunner()
URL = "sqlite+aiosqlite:///data/broadcaster.db"  # the example config's, in the work folder
MESSAGE = "Le paiement échoue pour une partie des clients. Nous sommes désolés, nous enquêtons."


def pause_email(opened_at: datetime, next_probe_at: datetime) -> None:
    async def work(sessions: SessionFactory) -> None:
        async with sessions() as session:
            await channel_pause.store(session, "email", opened_at, next_probe_at)

    with_sessions(URL, work)


def test_deliveries_show_a_channel_paused_by_its_breaker(workdir: Path) -> None:
    (workdir / "customers.csv").write_text(
        "email,telegram_chat_id,locale,components\na@example.com,,fr,\n", encoding="utf-8"
    )
    assert runner.invoke(app, ["subscribers", "import", "customers.csv"]).exit_code == 0
    opened = runner.invoke(app, ["incident", "open", "--title", "Paiement", "-c", "checkout", "-m", MESSAGE])
    assert opened.exit_code == 0, opened.output
    pause_email(datetime(2026, 12, 3, 13, 2, tzinfo=UTC), datetime(2026, 12, 3, 13, 3, tzinfo=UTC))

    line = "channel paused: provider unreachable since 14:02, next probe 14:03"  # Europe/Paris
    assert f"email: {line}" in runner.invoke(app, ["deliveries", "1"]).output
    report = json.loads(runner.invoke(app, ["deliveries", "1", "--json"]).output)
    assert report["paused"] == {"email": line}
