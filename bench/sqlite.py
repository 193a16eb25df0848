"""A fresh, migrated database for one benchmark run: SQLite in a temporary folder, or a
PostgreSQL database created for the run and dropped after it."""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any


@asynccontextmanager
async def temporary_database(prefix: str) -> AsyncIterator[tuple[str, Any]]:
    """(url, session factory) of a new database, deleted on exit.

    >>> async with temporary_database("caps-") as (url, sessions):
    ...     settings = parse_settings({"database": {"url": url}, ...}, "bench")
    """
    from broadcaster.db import create_engine, session_factory, upgrade

    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
        await asyncio.to_thread(upgrade, url)  # Alembic runs its own event loop: not on ours
        engine = create_engine(url)
        try:
            yield url, session_factory(engine)
        finally:
            await engine.dispose()


DEFAULT_POSTGRES = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


@asynccontextmanager
async def temporary_postgres(server_url: str, prefix: str) -> AsyncIterator[tuple[str, Any]]:
    """(url, session factory) of a new database on the server of `server_url`, dropped on exit."""
    import asyncpg
    from sqlalchemy.engine import make_url

    from broadcaster.db import create_engine, session_factory, upgrade

    base = make_url(server_url)
    name = f"{prefix}_{os.getpid()}"
    admin = base.set(drivername="postgresql").render_as_string(hide_password=False)

    async def run(statement: str) -> None:
        connection = await asyncpg.connect(admin)
        try:
            await connection.execute(statement)
        finally:
            await connection.close()

    await run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await run(f'CREATE DATABASE "{name}"')
    url = base.set(database=name).render_as_string(hide_password=False)
    try:
        await asyncio.to_thread(upgrade, url)
        engine = create_engine(url)
        try:
            yield url, session_factory(engine)
        finally:
            await engine.dispose()
    finally:
        await run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
