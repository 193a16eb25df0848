"""One holder per database (`election.DeploymentLock`), and pollers that poll only while holding it.

SQLite: an exclusive flock beside the database file (two locks in one process conflict too, as two
processes do); PostgreSQL: an advisory lock on a kept connection, gone with that connection.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from sqlalchemy import text

from broadcaster.db import SessionFactory
from broadcaster.election import DeploymentLock, poller_lock_key, poller_lock_name
from broadcaster.inbox.inbound import Poll, Poller
from channels.base import InboundMessage

WAIT = 30.0
KEY = poller_lock_key("test:source")


def lock_for(database_url: str) -> DeploymentLock:
    return DeploymentLock(database_url, KEY, poller_lock_name("test:source"))


def test_poller_lock_keys_are_stable_distinct_and_name_a_file_safely() -> None:
    assert poller_lock_key("email:imap") == poller_lock_key("email:imap")
    assert poller_lock_key("email:imap") != poller_lock_key("telegram:updates")
    assert poller_lock_key("telegram:updates") < 2**63  # a PostgreSQL bigint
    assert poller_lock_name("twitter:mentions+twitter:dms") == "poller-twitter-mentions-twitter-dms"


async def test_one_holder_at_a_time_and_the_next_takes_over_on_release(database_url: str) -> None:
    first, second = lock_for(database_url), lock_for(database_url)
    try:
        assert await first.acquire()
        assert not await second.acquire()
        assert await first.held() and not await second.held()
        await first.release()
        assert await second.acquire()
        assert not await first.acquire()
    finally:
        await first.release()
        await second.release()


@pytest.mark.postgres
async def test_on_postgresql_the_lock_goes_with_the_holders_connection(
    database_url: str, sessions: SessionFactory
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL's advisory lock")
    first, second = lock_for(database_url), lock_for(database_url)
    try:
        assert await first.acquire()
        async with sessions() as session:  # the holder's database connection dies (a crashed node)
            statement = text(
                "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                "AND ((classid::bigint << 32) | objid::bigint) = :key"
            )
            await session.exec(statement, params={"key": KEY})  # type: ignore[call-overload]
        deadline = time.monotonic() + WAIT
        while await first.held() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert not await first.held()
        assert await second.acquire()
    finally:
        await first.release()
        await second.release()


async def test_of_two_pollers_on_one_database_one_polls_and_the_other_takes_over(
    database_url: str, sessions: SessionFactory
) -> None:
    calls: dict[str, int] = {"first": 0, "second": 0}

    def source(name: str) -> Poll:
        async def poll(cursor: str) -> tuple[list[InboundMessage], str]:
            calls[name] += 1  # a provider that counts who asks
            return [], cursor

        return poll

    def poller(name: str) -> Poller:
        return Poller(sessions, {"test:source": source(name)}, 0.02, lock=lock_for(database_url))

    stop_first, stop_second = asyncio.Event(), asyncio.Event()
    first = asyncio.create_task(poller("first").run(stop_first))
    deadline = time.monotonic() + WAIT
    while calls["first"] == 0 and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    second = asyncio.create_task(poller("second").run(stop_second))
    try:
        while calls["first"] < 20 and time.monotonic() < deadline:  # many rounds of both loops
            await asyncio.sleep(0.02)
        assert calls["first"] >= 20 and calls["second"] == 0
        stop_first.set()
        await first  # a clean stop releases the lock
        while calls["second"] == 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert calls["second"] > 0
    finally:
        stop_first.set()
        stop_second.set()
        await asyncio.gather(first, second)
