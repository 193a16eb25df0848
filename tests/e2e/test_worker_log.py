"""`broadcaster worker` says what it does: one line per channel at start, progress, state changes."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from broadcaster.db import SessionFactory
from tests.e2e.helpers import draft, live_settings, open_, people, subscribe
from tests.peers.smtp import SmtpPeer

pytestmark = pytest.mark.slow


def write_config(path: Path, database_url: str, smtp: SmtpPeer) -> Path:
    disabled = "".join(
        f"[channels.{name}]\nenabled = false\n" for name in ("twitter", "facebook", "push", "blog")
    )
    path.write_text(
        f"""
[server]
log_format = "json"
[database]
url = "{database_url}"
[dispatch]
poll_interval_seconds = 0.05
[channels.email]
host = "127.0.0.1"
port = {smtp.port}
security = "none"
{disabled}""",
        encoding="utf-8",
    )
    return path


async def test_worker_logs_its_channels_and_progress_as_json_lines(
    database_url: str, sessions: SessionFactory, smtp: SmtpPeer, tmp_path: Path
) -> None:
    settings = live_settings(database_url, smtp, None)
    await subscribe(sessions, settings, people(20))
    await open_(sessions, settings, draft("investigating", "Le paiement échoue.", "Payment fails."))
    config = write_config(tmp_path / "config.toml", database_url, smtp)
    log_file = tmp_path / "worker.log"
    with log_file.open("wb") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "broadcaster", "worker"],
            env={**os.environ, "BROADCASTER_CONFIG": str(config)},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        try:
            assert await asyncio.to_thread(smtp.wait_for, 10, 60), log_file.read_text(errors="replace")
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.wait(timeout=30)
    events = [json.loads(line) for line in log_file.read_text().splitlines() if line.startswith("{")]
    started = {e["channel"]: e["mode"] for e in events if e["event"] == "channel started"}
    assert started == {"email": "live", "telegram": "capture"}
    sent = sum(
        e.get("sent", 0) for e in events if e["event"] == "channel progress" and e["channel"] == "email"
    )
    assert sent == 10
    assert events[-1]["event"] == "worker stopped"
    assert all(e["at"].endswith("Z") and e["level"] in {"INFO", "WARNING", "ERROR"} for e in events)
    assert "client0@example.com" not in log_file.read_text()
