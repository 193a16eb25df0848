"""Customer data at rest: the SQLite file is 0600, and the scheduler deletes messages past retention."""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import col, select

from broadcaster.compose.render import Composer
from broadcaster.db import SessionFactory, create_engine, session_factory, upgrade
from broadcaster.models import InboundRecord, Message, utcnow
from broadcaster.schedule.runner import Scheduler
from tests.conftest import make_settings
from tests.test_inbox_actions import customer_writes, inbound
from tests.test_scheduler import Clock


@pytest.fixture
def open_umask() -> Iterator[None]:
    """The usual umask (022): whatever is 0600 is so by our doing, not the environment's."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


@pytest.mark.usefixtures("open_umask")
async def test_the_sqlite_file_and_its_wal_are_created_0600(tmp_path: Path) -> None:
    folder = tmp_path / "data"
    url = f"sqlite+aiosqlite:///{folder / 'broadcaster.db'}"
    await asyncio.to_thread(upgrade, url)
    engine = create_engine(url)
    async with session_factory(engine)() as session:
        session.add(InboundRecord(channel="telegram", external_id="1:1", conversation_key="1", text="hello"))
        await session.commit()
        files = {p.name: p.stat().st_mode & 0o777 for p in folder.iterdir() if "broadcaster.db" in p.name}
    await engine.dispose()
    assert files["broadcaster.db"] == 0o600
    assert files["broadcaster.db-wal"] == 0o600 and files["broadcaster.db-shm"] == 0o600
    assert folder.stat().st_mode & 0o777 == 0o700
    with sqlite3.connect(folder / "broadcaster.db") as db:  # a real database, not an empty file
        assert db.execute("SELECT count(*) FROM inbound_message").fetchone() == (1,)


async def test_the_scheduler_deletes_customer_messages_older_than_the_retention(
    database_url: str, sessions: SessionFactory
) -> None:
    now = utcnow()
    settings = make_settings(database_url, privacy={"keep_customer_messages_days": 30})
    old, recent = now - timedelta(days=31), now - timedelta(days=29)
    (cid, _) = await customer_writes(
        sessions,
        inbound("42:1", "le site est en panne ?", received_at=old),
        inbound("42:2", "toujours en panne", received_at=recent),
    )
    async with sessions() as session:
        session.add(Message(conversation_id=cid, direction="out", channel="telegram", text="Nous regardons.",
                            author="Camille", created_at=old))  # fmt: skip
        await session.commit()

    scheduler = Scheduler(settings, sessions, Composer(default_locale="fr"), clock=Clock(now))
    assert await scheduler.run_due() == {"retention": "purged 1 message(s), 1 record(s)"}

    async with sessions() as session:
        messages = list(await session.exec(select(Message).order_by(col(Message.id))))
        records = list(await session.exec(select(InboundRecord)))
    assert [(m.direction, m.text) for m in messages] == [
        ("in", "toujours en panne"),
        ("out", "Nous regardons."),
    ]
    assert [r.external_id for r in records] == ["42:2"]
    assert await scheduler.run_due() == {}  # nothing more to delete


def test_the_retention_is_a_number_of_days_of_at_least_one() -> None:
    from broadcaster.config import ConfigError

    with pytest.raises(ConfigError, match="privacy.keep_customer_messages_days"):
        make_settings("sqlite+aiosqlite://", privacy={"keep_customer_messages_days": 0})
    assert make_settings("sqlite+aiosqlite://").privacy.keep_customer_messages_days == 365
