"""A fresh, migrated SQLite database in a temporary folder, for one benchmark run."""

from __future__ import annotations

import asyncio
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
