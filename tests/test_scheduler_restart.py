"""The scheduler across restarts (APScheduler's store in the product database) and across nodes."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text, update
from sqlmodel import col, select

from broadcaster.compose.render import Composer
from broadcaster.db import SessionFactory, create_engine, session_factory
from broadcaster.models import Incident, ScheduledRun, utcnow
from broadcaster.schedule.runner import ADVISORY_LOCK_KEY, Scheduler
from tests.test_scheduler import ON_CALL, STAFF_CHAT, open_major, promise_settings, staff_alerts

ROOT = Path(__file__).resolve().parent.parent
WAIT = 30.0


async def promise_at(sessions: SessionFactory, incident_id: int | None, when: datetime) -> None:
    """Set when an incident's next update is due (as if its last update had promised that)."""
    async with sessions() as session:
        await session.exec(
            update(Incident).where(col(Incident.id) == incident_id).values(next_update_at=when)
        )
        await session.commit()


async def runs(sessions: SessionFactory) -> dict[str, str]:
    async with sessions() as session:
        return {run.key: run.outcome for run in await session.exec(select(ScheduledRun))}


async def wait_for_runs(sessions: SessionFactory, count: int) -> dict[str, str]:
    """Until `count` runs are recorded (at most WAIT seconds)."""
    deadline = time.monotonic() + WAIT
    while len(found := await runs(sessions)) < count and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    return found


@pytest.fixture
async def sqlite_sessions(sqlite_url: str) -> AsyncIterator[SessionFactory]:
    engine = create_engine(sqlite_url)
    yield session_factory(engine)
    await engine.dispose()


async def test_after_a_restart_a_due_job_runs_once_a_late_one_is_reported_missed_the_rest_keep_their_times(
    sqlite_url: str, sqlite_sessions: SessionFactory
) -> None:
    sessions, settings = sqlite_sessions, promise_settings(sqlite_url)
    within, outside, later = [await open_major(sessions, settings, holding_messages=False) for _ in range(3)]
    now = utcnow()
    # The first process stored the jobs and stopped before any was due.
    first = Scheduler(settings, sessions, Composer(default_locale="fr"))
    first.start_jobs(paused=True)
    await promise_at(sessions, within.id, now + timedelta(hours=1))
    await promise_at(sessions, outside.id, now + timedelta(hours=1))
    await promise_at(sessions, later.id, now + timedelta(hours=2))
    await first.sync()
    first.stop_jobs()
    # While it was down, two promises came due: 5 minutes ago (grace 60) and 3 hours ago.
    await promise_at(sessions, within.id, now - timedelta(minutes=5))
    await promise_at(sessions, outside.id, now - timedelta(hours=3))
    second = Scheduler(settings, sessions, Composer(default_locale="fr"))
    second.start_jobs()
    try:
        await second.sync()  # the store had them at their old times: the plan moves them
        found = await wait_for_runs(sessions, 2)
        times = second.next_run_times()
    finally:
        second.stop_jobs()
    assert sorted(found.values()) == ["done", "missed"]
    assert found[f"followup:{within.id}:reminder:{(now - timedelta(minutes=5)).isoformat()}"] == "done"
    assert found[f"followup:{outside.id}:reminder:{(now - timedelta(hours=3)).isoformat()}"] == "missed"
    assert times == {f"followup:{later.id}:reminder": now + timedelta(hours=2)}
    alerts = await staff_alerts(sessions)
    assert sorted((a.channel, a.target) for a in alerts) == [("email", ON_CALL), ("telegram", STAFF_CHAT)]


def _scheduler_process(config: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "BROADCASTER_CONFIG": str(config)}
    with log.open("wb") as stderr:
        command = [sys.executable, "-m", "broadcaster", "scheduler"]
        return subprocess.Popen(command, cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=stderr)  # fmt: skip


async def _lock_holders(sessions: SessionFactory) -> list[int]:
    async with sessions() as session:
        statement = text("SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND objid = :key AND granted")
        return [pid for (pid,) in await session.exec(statement, params={"key": ADVISORY_LOCK_KEY})]  # type: ignore[call-overload]


async def wait_for_holders(sessions: SessionFactory, count: int) -> list[int]:
    deadline = time.monotonic() + WAIT
    while len(found := await _lock_holders(sessions)) != count and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    return found


@pytest.mark.postgres
async def test_two_scheduler_processes_on_postgresql_fire_every_job_once_and_take_over(
    pg_database_url: str, tmp_path: Path
) -> None:
    postgres_url = pg_database_url
    settings = promise_settings(postgres_url)
    config = tmp_path / "config.toml"
    config.write_text(
        f'[database]\nurl = "{postgres_url}"\n[schedule]\nsync_seconds = 0.2\n'
        f'[staff]\nemail = "{ON_CALL}"\ntelegram_chat_id = "{STAFF_CHAT}"\n',
        encoding="utf-8",
    )
    engine = create_engine(postgres_url)
    sessions = session_factory(engine)
    logs = [tmp_path / "first.log", tmp_path / "second.log"]
    processes = [_scheduler_process(config, log) for log in logs]
    try:
        first = await open_major(sessions, settings, holding_messages=False)
        await promise_at(sessions, first.id, utcnow() - timedelta(minutes=1))
        assert len(await wait_for_runs(sessions, 1)) == 1
        (holder,) = await wait_for_holders(sessions, 1)  # one scheduler works, the other stands by
        async with sessions() as session:  # the working node's database connection dies
            await session.exec(text(f"SELECT pg_terminate_backend({holder})"))  # type: ignore[call-overload]
        second = await open_major(sessions, settings, holding_messages=False)
        await promise_at(sessions, second.id, utcnow() - timedelta(minutes=1))
        found = await wait_for_runs(sessions, 2)
        assert sorted(found.values()) == ["done", "done"]
        assert len(await staff_alerts(sessions)) == 4  # two reminders, each to the e-mail and the chat
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        await engine.dispose()
    for log in logs:
        stderr = log.read_text(encoding="utf-8", errors="replace")
        assert "Traceback" not in stderr, stderr[-2000:]
