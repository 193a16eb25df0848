"""`broadcaster serve`: health, JSON status, RFC 8058 unsubscribe, and the workers in the same process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from sqlmodel import select

from broadcaster.db import SessionFactory
from broadcaster.delivery.subscribers import NewSubscriber
from broadcaster.models import Subscription
from broadcaster.web import create_app
from tests.conftest import make_settings
from tests.e2e.helpers import draft, open_, subscribe
from tests.peers.smtp import SmtpPeer
from tests.served import served


async def test_status_reports_components_and_open_incidents(
    database_url: str, sessions: SessionFactory
) -> None:
    settings = make_settings(database_url)
    app = create_app(settings, dispatch=False)
    async with served(app) as client:
        assert (await client.get("/healthz")).json() == {"status": "ok"}
        await open_(
            sessions,
            settings,
            draft(
                "investigating",
                "Le paiement échoue. Désolés, nous enquêtons.",
                "Payment fails. Sorry, we are investigating.",
            ),
            force=True,
        )
        status = (await client.get("/api/v1/status")).json()
    assert status["status"] == "incident"
    assert [i["title"] for i in status["incidents"]] == ["Paiement indisponible"]
    checkout = next(c for c in status["components"] if c["name"] == "checkout")
    assert checkout["status"] == "partial_outage"


async def test_one_click_unsubscribe_deactivates_and_unknown_token_is_404(
    database_url: str, sessions: SessionFactory
) -> None:
    settings = make_settings(database_url)
    await subscribe(sessions, settings, [NewSubscriber(email="bye@example.com", line=2)])
    async with sessions() as session:
        token = (await session.exec(select(Subscription.unsubscribe_token))).one()
    app = create_app(settings, dispatch=False)
    async with served(app) as client:
        response = await client.post(f"/unsubscribe/{token}", data={"List-Unsubscribe": "One-Click"})
        assert response.status_code == 200
        assert (await client.post("/unsubscribe/not-a-token")).status_code == 404
    async with sessions() as session:
        subscription = (await session.exec(select(Subscription))).one()
    assert not subscription.active and subscription.deactivated_reason == "unsubscribed"


@pytest.mark.slow
def test_serve_answers_and_its_workers_deliver_queued_updates(
    tmp_path: Path, free_port: Callable[[], int]
) -> None:
    port = free_port()
    with SmtpPeer() as smtp:
        config = tmp_path / "config.toml"
        config.write_text(
            f'[server]\nport = {port}\n[database]\nurl = "sqlite+aiosqlite:///{tmp_path}/b.db"\n'
            f"[dispatch]\npoll_interval_seconds = 0.1\n"
            f'[channels.email]\nhost = "127.0.0.1"\nport = {smtp.port}\nsecurity = "none"\n',
            encoding="utf-8",
        )
        env = {**os.environ, "BROADCASTER_CONFIG": str(config)}
        cli = [sys.executable, "-m", "broadcaster"]
        subprocess.run([*cli, "init"], env=env, check=True, capture_output=True, timeout=60)
        subprocess.run(
            [*cli, "subscribers", "add", "--email", "client@example.com"],
            env=env,
            check=True,
            capture_output=True,
            timeout=60,
        )
        with (tmp_path / "serve.log").open("wb") as log:
            server = subprocess.Popen(
                [*cli, "serve"], env=env, stdout=log, stderr=log, stdin=subprocess.DEVNULL
            )
        try:
            healthy = False
            for _ in range(200):  # bounded: up to ~20 s for the server to listen
                try:
                    healthy = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
                except httpx.TransportError:
                    time.sleep(0.1)
                if healthy:
                    break
            assert healthy, (tmp_path / "serve.log").read_text(errors="replace")
            queued = subprocess.run(
                [
                    *cli,
                    "incident",
                    "open",
                    "--title",
                    "Site lent",
                    "-c",
                    "website",
                    "--impact",
                    "minor",
                    "--no-wait",
                    "--force",
                    "-m",
                    "Le site est lent pour certains d'entre vous. Désolés, nous enquêtons.",
                ],
                env=env,
                capture_output=True,
                timeout=60,
                text=True,
            )
            assert queued.returncode == 0, queued.stderr
            assert smtp.wait_for(1, 30), (tmp_path / "serve.log").read_text(errors="replace")
            assert smtp.messages[0][1] == ["client@example.com"]
        finally:
            server.send_signal(signal.SIGINT)
            server.wait(timeout=30)
