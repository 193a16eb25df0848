"""Async engine and sessions; migrations with Alembic (`broadcaster init`).

SQLite is the embedded default (WAL, a busy timeout so CLI and server can share the file);
PostgreSQL (asyncpg) serves several nodes.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

from sqlalchemy import event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

SessionFactory = async_sessionmaker[AsyncSession]

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def _prepare_sqlite_file(url: str) -> None:
    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)


def _tune_sqlite(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=15000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def create_engine(url: str) -> AsyncEngine:
    """An async engine for `url`; SQLite files get their folder created and WAL mode."""
    if is_sqlite(url):
        _prepare_sqlite_file(url)
        engine = create_async_engine(url, connect_args={"timeout": 15})
        event.listen(engine.sync_engine, "connect", _tune_sqlite)
        return engine
    return create_async_engine(url, pool_size=10, max_overflow=10, pool_pre_ping=True)


_WRITERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[int, asyncio.Lock]] = (
    weakref.WeakKeyDictionary()
)


def writing(session: AsyncSession) -> AbstractAsyncContextManager[object]:
    """Hold around a write transaction on SQLite: one writer at a time in this process.

    SQLite allows one writer; a second one waits in SQLite's busy handler, which sleeps 1, 2, 5…
    100 ms between tries — hundreds of milliseconds under load. Queueing the writers here instead
    hands the lock over at once. PostgreSQL has row locks: nothing to wait for.
    """
    if dialect_name(session) != "sqlite":
        return contextlib.nullcontext()
    engine = session.get_bind()
    locks = _WRITERS.setdefault(asyncio.get_running_loop(), {})
    return locks.setdefault(id(engine), asyncio.Lock())


def dialect_name(session: AsyncSession) -> str:
    """'sqlite' or 'postgresql': the claim and upsert statements differ between them."""
    return session.get_bind().dialect.name


def session_factory(engine: AsyncEngine) -> SessionFactory:
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)


class DatabaseNotReady(Exception):
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
