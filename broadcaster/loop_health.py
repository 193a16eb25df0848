"""Long-running loops (a channel's dispatch loop, a poller) restarted when they die, and reported.

`LoopHealth.supervise` runs a loop until `stop`. When the loop raises, the error is logged at
once, the loop is reported down — in this process for `/healthz`, in the `loop_health` table for
`broadcaster doctor` — and it is restarted after a pause (1 s, doubling up to 60 s). It counts
as up again once it has run as long as it last waited without failing.

>>> health = LoopHealth(sessions)
>>> await health.supervise("push", worker.run, stop)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from broadcaster.db import SessionFactory, writing
from broadcaster.models import LoopState, utcnow

__all__ = ["FIRST_RESTART_SECONDS", "LONGEST_RESTART_SECONDS", "LoopDown", "LoopHealth", "restart_delay"]

log = logging.getLogger(__name__)

FIRST_RESTART_SECONDS = 1.0
LONGEST_RESTART_SECONDS = 60.0
Loop = Callable[[asyncio.Event], Awaitable[None]]


def restart_delay(failures: int) -> float:
    """Seconds before restarting a loop that failed `failures` times in a row."""
    return min(LONGEST_RESTART_SECONDS, FIRST_RESTART_SECONDS * 2.0 ** min(max(0, failures - 1), 16))


@dataclass(frozen=True, slots=True)
class LoopDown:
    """A loop that died and has not run steadily since; `error` is the exception's type only."""

    error: str
    since: datetime
    restarts: int


class LoopHealth:
    """Supervises this process's loops; `down()` names those down now."""

    def __init__(self, sessions: SessionFactory | None = None) -> None:
        self._sessions = sessions
        self._down: dict[str, LoopDown] = {}
        self._process = f"{socket.gethostname()}:{os.getpid()}"

    def down(self) -> dict[str, LoopDown]:
        return dict(self._down)

    async def supervise(self, name: str, loop: Loop, stop: asyncio.Event) -> None:
        """Run `loop(stop)` until it returns; restart it whenever it raises. Never raises itself."""
        await self._report_up(name, only_if_down=True)
        failures, waited = 0, 0.0
        while not stop.is_set():
            task = asyncio.ensure_future(loop(stop))
            try:
                if failures and not (await asyncio.wait({task}, timeout=waited))[0]:
                    failures = 0
                    await self._report_up(name)
                await task
                return
            except Exception as exc:
                failures += 1
                waited = restart_delay(failures)
                log.exception("loop %s failed (%d in a row); restarting in %g s", name, failures, waited)
                await self._report_down(name, type(exc).__name__)
            finally:
                if not task.done():  # we were cancelled (shutdown): so is the loop
                    task.cancel()
                    await asyncio.wait({task})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=waited)

    async def _report_down(self, name: str, error: str) -> None:
        previous = self._down.get(name)
        down = LoopDown(
            error=error,
            since=previous.since if previous else utcnow(),
            restarts=previous.restarts + 1 if previous else 1,
        )
        self._down[name] = down
        await self._store(name, down)

    async def _report_up(self, name: str, *, only_if_down: bool = False) -> None:
        self._down.pop(name, None)
        await self._store(name, None, only_if_down=only_if_down)

    async def _store(self, name: str, down: LoopDown | None, *, only_if_down: bool = False) -> None:
        """Record the state for `doctor`; a database that fails here is only logged (it may be the
        very failure being reported, and `/healthz` still knows)."""
        if self._sessions is None:
            return
        try:
            async with self._sessions() as session:
                if only_if_down:  # a read first: most starts have nothing to clear
                    row = await session.get(LoopState, name)
                    if row is None or not row.down:
                        return
                    await session.rollback()
                async with writing(session):
                    row = await session.get(LoopState, name) or LoopState(name=name)
                    row.down, row.process, row.updated_at = down is not None, self._process, utcnow()
                    row.error = down.error if down else ""
                    row.restarts = down.restarts if down else 0
                    row.since = down.since if down else row.updated_at
                    session.add(row)
                    await session.commit()
        except Exception:  # never let reporting a failure become one
            log.warning("could not record the state of loop %s", name, exc_info=True)
