"""Kill the dispatcher with SIGKILL mid-broadcast, start it again: nobody missed, few duplicates.

The lease heartbeat: a dead worker's rows are taken over after the short default lease, and a
send slower than the lease is never taken from a worker that lives.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlmodel import func, select

from broadcaster.db import SessionFactory
from broadcaster.models import Delivery
from tests.e2e.helpers import draft, live_settings, open_, people, subscribe
from tests.peers.smtp import SmtpPeer

pytestmark = pytest.mark.slow
RECIPIENTS = 200


@pytest.fixture
def smtp() -> Iterator[SmtpPeer]:
    with SmtpPeer(reply_delay=0.01) as peer:  # slow enough that a kill lands mid-broadcast
        yield peer


def write_config(path: Path, database_url: str, smtp: SmtpPeer, lease: str = "lease_seconds = 2") -> Path:
    path.write_text(
        f"""
[database]
url = "{database_url}"
[dispatch]
{lease}
poll_interval_seconds = 0.05
backoff_base_seconds = 0.2
backoff_max_seconds = 1
[channels.email]
host = "127.0.0.1"
port = {smtp.port}
security = "none"
pool_size = 4
[channels.telegram]
enabled = false
[channels.twitter]
enabled = false
[channels.facebook]
enabled = false
[channels.push]
enabled = false
[channels.blog]
enabled = false
""",
        encoding="utf-8",
    )
    return path


def start_worker(config: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "BROADCASTER_CONFIG": str(config)}
    with (config.parent / "worker.log").open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "broadcaster", "worker"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
        )


async def count_status(sessions: SessionFactory, status: str) -> int:
    async with sessions() as session:
        statement = select(func.count()).select_from(Delivery).where(Delivery.status == status)
        return int((await session.exec(statement)).one())


async def all_sent(sessions: SessionFactory, smtp: SmtpPeer, count: int, within: float = 60) -> bool:
    """Whether, within `within` seconds, the relay has `count` messages and the outbox `count` sent."""
    deadline = time.monotonic() + within
    if not await asyncio.to_thread(smtp.wait_for, count, within):
        return False
    while time.monotonic() < deadline:  # bounded: until the outbox agrees
        if await count_status(sessions, "sent") == count:
            return True
        await asyncio.sleep(0.05)
    return False


async def test_sigkill_mid_broadcast_loses_nobody(
    database_url: str, sessions: SessionFactory, smtp: SmtpPeer, tmp_path: Path
) -> None:
    settings = live_settings(database_url, smtp, None)
    await subscribe(sessions, settings, people(RECIPIENTS * 2))  # half of them are e-mail
    await open_(
        sessions,
        settings,
        draft(
            "investigating",
            "Le paiement échoue. Désolés, nous enquêtons.",
            "Payment is failing. Sorry, we are investigating.",
        ),
    )
    config = write_config(tmp_path / "config.toml", database_url, smtp)

    first = start_worker(config)
    try:
        reached = await asyncio.to_thread(smtp.wait_for, RECIPIENTS // 4, 60)
        assert reached, (tmp_path / "worker.log").read_text(errors="replace")
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    in_flight = await count_status(sessions, "sending")
    delivered_before_restart = len(smtp.messages)
    assert delivered_before_restart < RECIPIENTS, "the kill must land mid-broadcast"

    second = start_worker(config)
    try:
        assert await all_sent(sessions, smtp, RECIPIENTS)
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(timeout=30)

    received = Counter(r for _s, rcpts, _m in smtp.messages for r in rcpts)
    assert len(received) == RECIPIENTS  # nobody missed
    duplicates = sum(n - 1 for n in received.values())
    assert duplicates <= in_flight
    # Duplicates are detectable: the same delivery always carries the same Message-ID.
    ids_per_rcpt: dict[str, set[str]] = {}
    for _s, rcpts, message in smtp.messages:
        for rcpt in rcpts:
            ids_per_rcpt.setdefault(rcpt, set()).add(str(message["Message-ID"]))
    assert all(len(ids) == 1 for ids in ids_per_rcpt.values())
    assert await count_status(sessions, "sent") == RECIPIENTS


async def test_a_dead_workers_rows_are_taken_over_after_the_short_default_lease(
    database_url: str, sessions: SessionFactory, smtp: SmtpPeer, tmp_path: Path
) -> None:
    settings = live_settings(database_url, smtp, None)
    await subscribe(sessions, settings, people(RECIPIENTS * 2))
    await open_(sessions, settings, draft("investigating", "Le paiement échoue.", "Payment is failing."))
    config = write_config(tmp_path / "config.toml", database_url, smtp, lease="")  # the default lease

    first = start_worker(config)
    try:
        assert await asyncio.to_thread(smtp.wait_for, RECIPIENTS // 4, 60)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    in_flight = await count_status(sessions, "sending")
    assert in_flight > 0, "the kill must leave leased rows behind"

    second = start_worker(config)
    try:
        # Bounded well below a minute: the rows come back within the short lease, not after 60 s.
        taken_over = await all_sent(sessions, smtp, RECIPIENTS, within=30)
        assert taken_over, "the dead worker's rows were not taken over"
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(timeout=30)
    received = Counter(r for _s, rcpts, _m in smtp.messages for r in rcpts)
    assert len(received) == RECIPIENTS
    assert sum(n - 1 for n in received.values()) <= in_flight


SLOW_RECIPIENTS = 8


async def test_a_send_slower_than_the_lease_is_not_sent_twice_while_its_worker_lives(
    database_url: str, sessions: SessionFactory, tmp_path: Path
) -> None:
    with SmtpPeer(reply_delay=0.6) as slow:  # MAIL, RCPT and DATA: ~1.8 s a message, the lease is 1 s
        settings = live_settings(database_url, slow, None)
        await subscribe(sessions, settings, people(SLOW_RECIPIENTS * 2))
        await open_(sessions, settings, draft("investigating", "Le paiement échoue.", "Payment is failing."))
        config = write_config(tmp_path / "config.toml", database_url, slow, lease="lease_seconds = 1")
        workers = [start_worker(config), start_worker(config)]  # the second one would take expired rows
        try:
            assert await all_sent(sessions, slow, SLOW_RECIPIENTS)
        finally:
            for worker in workers:
                worker.send_signal(signal.SIGTERM)
            for worker in workers:
                worker.wait(timeout=30)
        received = Counter(r for _s, rcpts, _m in slow.messages for r in rcpts)
    assert await count_status(sessions, "sent") == SLOW_RECIPIENTS
    assert len(received) == SLOW_RECIPIENTS
    assert set(received.values()) == {1}, received
