"""Async engine and sessions; migrations with Alembic (`broadcaster init`).

SQLite is the embedded default (WAL, a busy timeout so CLI and server can share the file);
PostgreSQL (asyncpg) serves several nodes.
"""

from __future__ import annotations

import contextlib
import os
import weakref
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any, TypeVar

import aiologic
from sqlalchemy import Connection, Engine, event, inspect, text
from sqlalchemy import create_engine as sa_create_engine
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

from broadcaster.errors import ConfigurationError

__all__ = [
    "DatabaseNotReady",
    "LoopWriter",
    "MIGRATIONS_DIR",
    "SessionFactory",
    "T",
    "alembic_config",
    "create_engine",
    "create_sync_engine",
    "dialect_name",
    "ensure_schema",
    "is_locked",
    "is_sqlite",
    "session_factory",
    "sqlite_writer",
    "upgrade",
    "upsert_insert",
    "writing",
]

SessionFactory = async_sessionmaker[AsyncSession]
T = TypeVar("T")
R = TypeVar("R")

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def _prepare_sqlite_file(url: str) -> None:
    """Its folder (0700 when new) and the file itself, 0600 from the start: customer messages live in it.

    SQLite gives its -wal and -shm files the database file's mode.
    """
    database = make_url(url).database
    if database and database != ":memory:":
        path = Path(database)
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))


def _tune_sqlite(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=15000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def create_engine(url: str) -> AsyncEngine:
    """An async engine for `url`; SQLite files get their folder created and WAL mode.

    SQL parameters (customer text, addresses) are kept out of error messages and logs.
    """
    if is_sqlite(url):
        _prepare_sqlite_file(url)
        engine = create_async_engine(url, connect_args={"timeout": 15}, hide_parameters=True)
        event.listen(engine.sync_engine, "connect", _tune_sqlite)
        return engine
    return create_async_engine(url, pool_size=10, max_overflow=10, pool_pre_ping=True, hide_parameters=True)


def create_sync_engine(url: str, *, busy_timeout_ms: int = 15_000) -> Engine:
    """A synchronous engine on the SQLite file of `url`, same PRAGMAs (the inbox filer's).

    `busy_timeout_ms` 0: a write fails at once ("database is locked") while another process
    writes, instead of blocking the event loop that calls it.
    """
    if not is_sqlite(url):
        backend = make_url(url).get_backend_name()
        raise ValueError(f"a synchronous engine is only made for SQLite, not {backend}")
    _prepare_sqlite_file(url)
    engine = sa_create_engine(
        make_url(url).set(drivername="sqlite"),
        connect_args={"timeout": busy_timeout_ms / 1000},
        hide_parameters=True,
    )

    def tune(dbapi_connection: Any, record: Any) -> None:
        _tune_sqlite(dbapi_connection, record)
        dbapi_connection.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")

    event.listen(engine, "connect", tune)
    return engine


_WRITERS: dict[str, aiologic.Lock] = {}


def sqlite_writer(url: URL) -> aiologic.Lock:
    """The writer lock of a SQLite file: `async with` it on an event loop, `with` it in a thread."""
    return _WRITERS.setdefault(str(url.database), aiologic.Lock())


def is_locked(exc: OperationalError) -> bool:
    """SQLite refused at once because another connection (another process) is writing."""
    return "locked" in str(exc.orig) or "busy" in str(exc.orig)


class LoopWriter:
    """Short SQLite write transactions run as plain synchronous calls on the event loop.

    Through aiosqlite each statement is a round trip to its thread and back to the loop, behind
    every request being handled, all while the process's writer lock is held. Here the lock is
    awaited, then `fn` runs and commits at once (a millisecond or two). The connection never
    waits for SQLite's own lock: while another process writes, `fallback` (the aiosqlite way,
    which waits in its thread) runs instead. PostgreSQL: always `fallback`.
    """

    def __init__(self, sessions: SessionFactory) -> None:
        bind = sessions.kw.get("bind")
        url = bind.url.render_as_string(hide_password=False) if isinstance(bind, AsyncEngine) else ""
        self._engine = create_sync_engine(url, busy_timeout_ms=0) if url and is_sqlite(url) else None
        if self._engine is not None:
            weakref.finalize(self, self._engine.dispose)

    async def run(self, fn: Callable[[Connection], T], fallback: Callable[[], Awaitable[T]]) -> T:
        """`fn(connection)` then commit, under the writer lock; or `fallback()` (see the class)."""
        return await self.read_then_write(lambda _: None, lambda connection, _: fn(connection), fallback)

    async def read_then_write(
        self,
        read: Callable[[Connection], R],
        write: Callable[[Connection, R], T],
        fallback: Callable[[], Awaitable[T]],
    ) -> T:
        """`read(connection)` without the writer lock, then `write(connection, what was read)` and
        commit under it, in one transaction; or `fallback()` (see the class)."""
        if self._engine is None:
            return await fallback()
        try:
            with self._engine.connect() as connection:
                found = read(connection)
                async with sqlite_writer(self._engine.url):
                    result = write(connection, found)
                    connection.commit()
                    return result
        except OperationalError as exc:
            if not is_locked(exc):
                raise
        return await fallback()


def writing(session: AsyncSession) -> AbstractAsyncContextManager[object]:
    """Hold around a write transaction on SQLite: one writer at a time in this process.

    SQLite allows one writer; a second one waits in SQLite's busy handler, which sleeps 1, 2, 5…
    100 ms between tries — hundreds of milliseconds under load. Queueing the writers here instead
    hands the lock over at once, to a writer of any thread and event loop of this process (the
    scheduler runs on a thread of its own). PostgreSQL has row locks: nothing to wait for.
    """
    if dialect_name(session) != "sqlite":
        return contextlib.nullcontext()
    return sqlite_writer(session.get_bind().engine.url)


def upsert_insert(dialect: str) -> Callable[[Any], Any]:
    """The `insert` with `on_conflict_do_nothing` of `dialect` ('postgresql' or 'sqlite')."""
    return postgresql.insert if dialect == "postgresql" else sqlite.insert


def dialect_name(session: AsyncSession) -> str:
    """'sqlite' or 'postgresql': the claim and upsert statements differ between them."""
    return session.get_bind().dialect.name


def session_factory(engine: AsyncEngine) -> SessionFactory:
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)


class DatabaseNotReady(ConfigurationError):
    """The schema is missing or older than this release: `broadcaster init` fixes it."""


async def ensure_schema(engine: AsyncEngine) -> None:
    """Raise `DatabaseNotReady` unless the database is at the latest migration."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config(str(engine.url))).get_current_head()
    async with engine.connect() as conn:
        has_table = await conn.run_sync(lambda sync: inspect(sync).has_table("alembic_version"))
        current = (
            (await conn.execute(text("SELECT version_num FROM alembic_version"))).scalar()
            if has_table
            else None
        )
    if current is None:
        raise DatabaseNotReady(
            f"the database at {engine.url.render_as_string()} is not initialised: run `broadcaster init`"
        )
    if current != head:
        raise DatabaseNotReady(
            f"the database schema is at {current}, this release needs {head}: run `broadcaster init`"
        )


def alembic_config(url: str) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str) -> None:
    """Bring the schema at `url` to the latest migration (idempotent)."""
    from alembic import command

    if is_sqlite(url):
        _prepare_sqlite_file(url)
    command.upgrade(alembic_config(url), "head")
