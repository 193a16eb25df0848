"""`LoopWriter`: short SQLite writes run on the event loop, giving way when another process writes."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import Connection, text
from sqlalchemy.exc import IntegrityError

from broadcaster.db import LoopWriter, create_engine, create_sync_engine, is_sqlite, session_factory


def _insert(connection: Connection) -> str:
    connection.execute(text("INSERT INTO t (x) VALUES (1)"))
    return "on the loop"


async def _through_aiosqlite() -> str:
    return "fallback"


async def test_a_write_runs_on_the_loop_and_gives_way_while_another_process_writes(tmp_path: Path) -> None:
    path = tmp_path / "writer.db"
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    try:
        async with engine.begin() as connection:
            await connection.execute(text("CREATE TABLE t (x INTEGER)"))
        writer = LoopWriter(session_factory(engine))
        assert await writer.run(_insert, _through_aiosqlite) == "on the loop"
        other = sqlite3.connect(path, isolation_level=None)  # another process's connection, writing
        try:
            other.execute("BEGIN IMMEDIATE")
            assert await writer.run(_insert, _through_aiosqlite) == "fallback"  # no wait on the loop
            other.execute("ROLLBACK")
        finally:
            other.close()
        assert await writer.run(_insert, _through_aiosqlite) == "on the loop"
        async with engine.connect() as connection:
            assert (await connection.execute(text("SELECT count(*) FROM t"))).scalar() == 2  # committed
    finally:
        await engine.dispose()


async def test_a_failing_statement_keeps_its_parameters_out_of_the_error(database_url: str) -> None:
    """The error reaches logs and tracebacks: customer text bound to the statement must not."""
    words = "mon code carte est 4970 1234"
    engine = create_engine(database_url)
    statement = text("INSERT INTO poll_cursor (name, cursor, updated_at) VALUES (:name, :cursor, NULL)")
    try:
        with pytest.raises(IntegrityError) as failed:
            async with engine.begin() as connection:
                await connection.execute(statement, {"name": "x", "cursor": words})
        assert words not in str(failed.value) and "hidden" in str(failed.value)
    finally:
        await engine.dispose()
    if is_sqlite(database_url):
        sync = create_sync_engine(database_url)
        try:
            with pytest.raises(IntegrityError) as failed, sync.begin() as connection:
                connection.execute(statement, {"name": "x", "cursor": words})
            assert words not in str(failed.value)
        finally:
            sync.dispose()
