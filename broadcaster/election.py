"""What runs on one node of a deployment at a time: the scheduler, and each poller.

A `DeploymentLock` is held by one process per database. PostgreSQL: `pg_try_advisory_lock` on a
connection the holder keeps open, so the lock goes when the process dies (even `kill -9`: the
server sees the connection close); SQLite: an exclusive `flock` on a file beside the database.
A process that does not get it stands by and asks again; `held()` turns False once the holder's
connection is gone, and the holder then stops what it was elected for.

    lock = DeploymentLock(settings.database.url, poller_lock_key("email:imap"), "poller-email-imap")
    if await lock.acquire():
        ...  # poll while `await lock.held()`
    await lock.release()
"""

from __future__ import annotations

import contextlib
import fcntl
import re
import zlib
from pathlib import Path
from typing import IO, Any

from sqlalchemy.engine import make_url

__all__ = ["POLLER_LOCK_SPACE", "DeploymentLock", "poller_lock_key", "poller_lock_name"]

#: The high 32 bits of every poller's advisory lock key ("POLL"); the low ones hash its name.
POLLER_LOCK_SPACE = 0x504F4C4C


def poller_lock_key(name: str) -> int:
    """The advisory lock key of the poller called `name` (e.g. "telegram:updates"), stable across nodes."""
    return (POLLER_LOCK_SPACE << 32) | zlib.crc32(name.encode())


def poller_lock_name(name: str) -> str:
    """The SQLite lock file's suffix for the poller `name`: `<database>.poller-telegram-updates.lock`."""
    return "poller-" + re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


class DeploymentLock:
    """One holder per database: `acquire()` (no wait), `held()`, `release()`.

    `key`: the PostgreSQL advisory lock key; `name`: the SQLite lock file's suffix. A process
    standing by keeps its PostgreSQL connection between tries (one connection, not one a try).
    """

    def __init__(self, database_url: str, key: int, name: str) -> None:
        self._url = make_url(database_url)
        self._key = key
        self._name = name
        self._connection: Any = None
        self._held = False
        self._file: IO[bytes] | None = None

    async def acquire(self) -> bool:
        """Take the lock if nobody holds it; True when this process holds it now."""
        if self._held:
            return True
        if self._url.get_backend_name() == "sqlite":
            self._held = self._acquire_file()
            return self._held
        import asyncpg

        if self._connection is None or self._connection.is_closed():
            url = self._url.set(drivername="postgresql").render_as_string(hide_password=False)
            self._connection = await asyncpg.connect(url)
        try:
            self._held = bool(await self._connection.fetchval("SELECT pg_try_advisory_lock($1)", self._key))
        except Exception:  # the connection broke while standing by: the next try opens another
            await self._close()
            raise
        return self._held

    def _acquire_file(self) -> bool:
        database = self._url.database or ""
        path = Path(f"{database}.{self._name}.lock") if database not in ("", ":memory:") else None
        if path is None:
            return True  # an in-memory database belongs to this process alone
        handle = path.open("wb")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        self._file = handle
        return True

    async def held(self) -> bool:
        """Whether this process still holds the lock (False once its connection is gone)."""
        if not self._held:
            return False
        if self._connection is None:
            return True
        try:
            await self._connection.fetchval("SELECT 1")
        except Exception:  # the connection is gone, and the lock with it
            self._held = False
            await self._close()
            return False
        return True

    async def release(self) -> None:
        """Give the lock up (and stop standing by)."""
        self._held = False
        await self._close()
        if self._file is not None:
            self._file.close()
            self._file = None

    async def _close(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(Exception):
                await self._connection.close()  # closing the session releases the advisory lock
            self._connection = None
