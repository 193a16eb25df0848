"""The inbox filer inside `broadcaster serve`, and the spike detector it wakes.

The status bot's answer waits for the filer's batch. Through aiosqlite every statement of a batch
is a round trip (its thread → the event loop, behind every HTTP request being handled), and a
thread of our own fares no better: it waits for the GIL at each of SQLite's calls. So on SQLite
a batch is read and written by plain synchronous calls on the serving loop itself (a few ms, no
hop), with a connection that never waits for SQLite's lock: when another process (a CLI
command) is writing, that batch goes through aiosqlite instead, which waits in its thread.
PostgreSQL: each batch is one `run_sync` call of the same functions.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Protocol, Self

from sqlalchemy import Connection

from broadcaster.auth.audit import BOT, acting_as
from broadcaster.config import Settings
from broadcaster.db import LoopWriter, SessionFactory
from broadcaster.delivery.dispatch import Dispatcher
from broadcaster.delivery.outbox import ClaimedDelivery
from broadcaster.delivery.staff_alerts import STAFF_CHANNELS
from broadcaster.inbox.answers import HandOff
from broadcaster.inbox.bot import StatusBot
from broadcaster.inbox.filing import NOTHING, Batch, Reading, file_pending_batch, read_batch, write_batch
from broadcaster.inbox.spikes import draft_if_spike
from broadcaster.metrics import Metrics
from broadcaster.models import utcnow

__all__ = ["Filer", "InboxFiling", "Senders"]

log = logging.getLogger(__name__)


class Senders(Protocol):
    """The dispatch workers of this process (`broadcaster.delivery.dispatch.Dispatcher`)."""

    def hand_off(self) -> HandOff: ...

    def take(self, claimed: Sequence[ClaimedDelivery]) -> None: ...


class Filer:
    """Files new messages: at once when `nudge`d, else every `interval`, until `stop`.

    Webhooks, pollers and the e-mail listener nudge it after they commit, so the status bot's
    answer is queued within milliseconds; the interval catches messages stored by other nodes.
    The bot's answers are written claimed for `senders` and handed to them once committed, here
    and nowhere else. On SQLite a batch is read, then written under the writer lock, as one
    synchronous call on the loop (`LoopWriter`; see the module's doc). `on_filed` learns each
    filed batch (it wakes the spike detector; it must not block).
    """

    def __init__(
        self,
        sessions: SessionFactory,
        *,
        bot: StatusBot | None = None,
        senders: Senders | None = None,
        on_filed: Callable[[Batch], None] | None = None,
        interval: float = 0.5,
        metrics: Metrics | None = None,
    ) -> None:
        self._sessions = sessions
        self._metrics = metrics or Metrics()
        self._bot = bot
        self._senders = senders
        self._on_filed = on_filed
        self._interval = interval
        self._nudged = asyncio.Event()
        self._writer = LoopWriter(sessions)

    def nudge(self) -> None:
        self._nudged.set()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self._nudged.clear()
            try:
                batch = await self._file_once()
                self._metrics.inbound_filed.inc(batch.filed)
                if batch.filed and self._on_filed is not None:
                    self._on_filed(batch)
            except Exception:  # the database went away, a bug: log it, keep the inbox alive, retry
                log.exception("inbox filing failed; retrying in %.1f s", self._interval)
                batch = NOTHING
            if batch.filed == 0:
                waiters = [asyncio.ensure_future(self._nudged.wait()), asyncio.ensure_future(stop.wait())]
                await asyncio.wait(waiters, timeout=self._interval, return_when="FIRST_COMPLETED")
                for waiter in waiters:
                    waiter.cancel()

    async def _file_once(self) -> Batch:
        hand_off = self._senders.hand_off() if self._senders is not None else None

        def write(connection: Connection, reading: Reading | None) -> Batch:
            return NOTHING if reading is None else write_batch(connection, reading, self._bot, hand_off)

        batch = await self._writer.read_then_write(
            read_batch,
            write,
            lambda: file_pending_batch(self._sessions, bot=self._bot, hand_off=hand_off),
        )
        if self._senders is not None and batch.claimed:
            self._senders.take(batch.claimed)
        return batch


class InboxFiling:
    """The inbox of `broadcaster serve`: the filer, its status bot handing answers to `dispatcher`,
    and the spike detector, run apart from the filer and only after batches with outage reports
    while no incident is open (otherwise it cannot fire)."""

    def __init__(self, settings: Settings, sessions: SessionFactory, dispatcher: Dispatcher) -> None:
        self._settings = settings
        self._sessions = sessions
        self._dispatcher = dispatcher
        self._spike_wanted = asyncio.Event()
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._filer = Filer(
            sessions,
            bot=StatusBot(settings, dispatcher.metrics),
            senders=dispatcher,
            on_filed=self._filed,
            metrics=dispatcher.metrics,
        )

    def nudge(self) -> None:
        """New messages are stored: file them now."""
        self._filer.nudge()

    async def start(self) -> None:
        self._stop.clear()
        with acting_as(BOT):  # the tasks keep this context: what they change is the bot's doing
            self._tasks = [
                asyncio.create_task(self._filer.run(self._stop)),
                asyncio.create_task(self._detect_spikes()),
            ]

    async def stop(self) -> None:
        self._stop.set()
        self._spike_wanted.set()
        await asyncio.gather(*self._tasks)
        self._tasks = []

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def _filed(self, batch: Batch) -> None:
        if batch.unexplained_reports:
            self._spike_wanted.set()

    async def _detect_spikes(self) -> None:
        """One check at a time; reports filed meanwhile are counted by the next one."""
        while not self._stop.is_set():
            await self._spike_wanted.wait()
            self._spike_wanted.clear()
            if self._stop.is_set():
                return
            try:
                async with self._sessions() as session:
                    if await draft_if_spike(session, self._settings, utcnow()) is not None:
                        for channel in STAFF_CHANNELS:  # the staff alert
                            self._dispatcher.wake(channel)
            except Exception:  # the database went away, a bug: the next batch tries again
                log.exception("spike detection failed")
