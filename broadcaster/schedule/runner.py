"""The scheduler: APScheduler 3 fires every planned job at its time, one scheduler per deployment.

`Scheduler.run` takes the deployment's scheduler lock (`election.DeploymentLock`; PostgreSQL:
`pg_try_advisory_lock` on a connection it keeps; SQLite: an exclusive `flock` beside the database
file), then runs an
`AsyncIOScheduler` whose `SQLAlchemyJobStore` lives in the product's database. Every
`sync_seconds` it mirrors the plan (`schedule_plan.plan`, read from the incidents) into the store:
new jobs added, moved ones replaced (`replace_existing`), stale ones removed. Another node waits for
the lock and takes over when its holder dies. A job whose time passed while no scheduler ran runs
on start if within its grace (`misfire_grace_time`), else it is recorded as missed. Every hour it
also deletes the customer messages older than `[privacy] keep_customer_messages_days`.

APScheduler's store is synchronous: it runs on its own thread and event loop in `serve`
(`SchedulerThread`), so a store write waiting for SQLite's lock never blocks the web loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Self

from apscheduler.events import EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy.engine import make_url

from broadcaster.auth.audit import Actor, acting_as
from broadcaster.compose.render import Composer
from broadcaster.config import Settings
from broadcaster.db import SessionFactory, create_engine, session_factory
from broadcaster.election import DeploymentLock
from broadcaster.inbox.retention import Purged, purge_customer_messages
from broadcaster.models import utcnow
from broadcaster.schedule.jobs import JobContext, execute, record_missed
from broadcaster.schedule.plan import JOB_PREFIXES, PlannedJob, plan

__all__ = [
    "ADVISORY_LOCK_KEY",
    "Clock",
    "JOBS_TABLE",
    "PURGE_INTERVAL",
    "Scheduler",
    "SchedulerThread",
    "fire",
    "sync_database_url",
]

log = logging.getLogger(__name__)

ADVISORY_LOCK_KEY = 0x5C4ED  # "sched": one scheduler per PostgreSQL database
JOBS_TABLE = "apscheduler_jobs"
PURGE_INTERVAL = timedelta(hours=1)  # how often old customer messages are looked for

Clock = Callable[[], datetime]

#: The schedulers running in this process, by database URL: APScheduler's persistent store keeps
#: jobs as a module-level function plus picklable arguments, and `fire` finds its scheduler here.
_RUNNING: dict[str, Scheduler] = {}


def sync_database_url(url: str) -> str:
    """The URL of the same database for a synchronous driver (APScheduler's store is synchronous)."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    driver = "sqlite" if backend == "sqlite" else "postgresql+psycopg"
    return parsed.set(drivername=driver).render_as_string(hide_password=False)


async def fire(database_url: str, job: PlannedJob) -> None:
    """APScheduler's job function: run `job` with the scheduler of this process."""
    scheduler = _RUNNING.get(database_url)
    if scheduler is None:
        log.error("scheduled %s for incident #%d fired with no scheduler running", job.kind, job.incident_id)
        return
    await scheduler.run_job(job)


#: Who the audit log says did what a scheduled job did (a reminder, a maintenance's notices).
SCHEDULER = Actor("scheduler")


class Scheduler:
    """Plans and fires the jobs of one database. `clock` is injectable (tests), `on_queued` wakes
    the dispatch workers for the channels a job queued messages on."""

    def __init__(
        self,
        settings: Settings,
        sessions: SessionFactory,
        composer: Composer,
        *,
        clock: Clock = utcnow,
        on_queued: Callable[[Sequence[str]], None] | None = None,
        sync_seconds: float | None = None,
    ) -> None:
        self._settings = settings
        self._context = JobContext(settings, sessions, composer, on_queued)
        self._clock = clock
        self._sync_seconds = sync_seconds or settings.schedule.sync_seconds
        self._url = settings.database.url
        self._aps: AsyncIOScheduler | None = None
        self._next_purge_at = datetime.min.replace(tzinfo=UTC)

    async def planned(self) -> list[PlannedJob]:
        async with self._context.sessions() as session:
            return await plan(session, self._settings)

    async def run_job(self, job: PlannedJob) -> str:
        """Run `job` now (APScheduler fired it, or `run_due` found it due); its outcome."""
        try:
            with acting_as(SCHEDULER):
                return await execute(self._context, job, self._clock())
        except Exception:  # one job failing must not stop the others; the next sync plans it again
            log.exception("scheduled %s for incident #%d failed", job.kind, job.incident_id)
            return "failed"

    async def run_due(self) -> dict[str, str]:
        """Run every planned job due at `clock()` (missed ones past their grace are recorded as such),
        then the retention purge (its outcome under "retention" when it deleted something).

        What APScheduler does at each job's time, at once: for tests with an injected clock, and
        for `broadcaster schedule --run-due`.
        """
        now = self._clock()
        outcomes: dict[str, str] = {}
        for job in await self.planned():
            if job.run_at > now:
                continue
            if (now - job.run_at).total_seconds() > job.grace_seconds:
                await record_missed(self._context, job, now)
                outcomes[job.run_key] = "missed"
            else:
                outcomes[job.run_key] = await self.run_job(job)
        purged = await self.purge_old_messages()
        if purged:
            outcomes["retention"] = f"purged {purged.messages} message(s), {purged.records} record(s)"
        return outcomes

    async def purge_old_messages(self) -> Purged:
        """Delete what customers wrote before `[privacy] keep_customer_messages_days`."""
        now = self._clock()
        self._next_purge_at = now + PURGE_INTERVAL
        try:
            purged = await purge_customer_messages(
                self._context.sessions, self._settings.privacy.keep_customer_messages_days, now
            )
        except Exception:  # the scheduler goes on; the next interval tries again
            log.exception("retention: deleting old customer messages failed")
            return Purged(0, 0)
        if purged:
            log.info("retention: deleted %d customer message(s) and %d inbound record(s)",
                     purged.messages, purged.records)  # fmt: skip
        return purged

    async def run(self, stop: asyncio.Event) -> None:
        """Wait for the scheduler lock, then schedule until `stop` (or until the lock is lost)."""
        lock = DeploymentLock(self._url, ADVISORY_LOCK_KEY, "scheduler")
        try:
            while not stop.is_set():
                if await lock.acquire():
                    log.info("scheduler started: this process runs the deployment's scheduled jobs")
                    try:
                        await self._schedule_while_held(lock, stop)
                    finally:
                        await lock.release()
                if not stop.is_set():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), timeout=self._sync_seconds)
        finally:
            await lock.release()  # a node standing by closes its connection too

    async def _schedule_while_held(self, lock: DeploymentLock, stop: asyncio.Event) -> None:
        self.start_jobs()  # jobs due while no scheduler ran are fired or reported missed now
        try:
            while not stop.is_set() and await lock.held():
                if self._clock() >= self._next_purge_at:
                    await self.purge_old_messages()
                await self.sync()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=self._sync_seconds)
        finally:
            self.stop_jobs()

    def start_jobs(self, *, paused: bool = False) -> None:
        """Open APScheduler on the job store; `paused`: store and move jobs, fire none."""
        aps = AsyncIOScheduler(
            jobstores={"default": SQLAlchemyJobStore(url=sync_database_url(self._url), tablename=JOBS_TABLE)},
            timezone="UTC",
        )
        aps.add_listener(self._on_missed, EVENT_JOB_MISSED)
        _RUNNING[self._url] = self
        self._aps = aps
        aps.start(paused=paused)

    def stop_jobs(self) -> None:
        """Close APScheduler; pending jobs stay in the store for the next scheduler."""
        if self._aps is not None:
            self._aps.shutdown(wait=False)
            self._aps = None
        _RUNNING.pop(self._url, None)

    def next_run_times(self) -> dict[str, datetime | None]:
        """Each job in the store and when it fires."""
        assert self._aps is not None, "start_jobs() first"
        return {job.id: job.next_run_time for job in self._aps.get_jobs()}

    async def sync(self) -> list[PlannedJob]:
        """Mirror the plan into APScheduler's store; returns the plan."""
        aps = self._aps
        assert aps is not None, "sync() needs a running scheduler"
        jobs = await self.planned()
        wanted = {job.id: job for job in jobs}
        for existing in aps.get_jobs():
            if existing.id.startswith(JOB_PREFIXES) and existing.id not in wanted:
                existing.remove()
            elif existing.id in wanted and existing.args[1] == wanted[existing.id]:
                del wanted[existing.id]  # already there, unchanged
        for job in wanted.values():
            aps.add_job(
                fire, "date", run_date=job.run_at, args=(self._url, job), id=job.id, name=job.title,
                replace_existing=True, misfire_grace_time=max(int(job.grace_seconds), 1), coalesce=True,
                max_instances=1,
            )  # fmt: skip
        return jobs

    def _on_missed(self, event: JobExecutionEvent) -> None:
        if event.job_id.startswith(
            JOB_PREFIXES
        ):  # by now APScheduler has dropped the job: find it in the plan
            task = asyncio.get_running_loop().create_task(self._record_missed(event.job_id))
            task.add_done_callback(_log_failure)

    async def _record_missed(self, job_id: str) -> None:
        for job in await self.planned():
            if job.id == job_id:
                await record_missed(self._context, job, self._clock())


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("recording a missed job failed: %s", task.exception())


class SchedulerThread:
    """The scheduler on a thread and event loop of its own, with its own engine (inside `serve`).

    `wake(channels)` is called on the serving loop, thread-safely, when a job queued messages.
    """

    def __init__(self, settings: Settings, composer: Composer, wake: Callable[[str], None]) -> None:
        self._settings = settings
        self._composer = composer
        self._wake = wake
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._started = threading.Event()

    def start(self) -> None:
        serving_loop = asyncio.get_running_loop()

        def wake(channels: Sequence[str]) -> None:
            for channel in channels:
                serving_loop.call_soon_threadsafe(self._wake, channel)

        async def main() -> None:
            engine = create_engine(self._settings.database.url)
            self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
            self._started.set()
            try:
                scheduler = Scheduler(self._settings, session_factory(engine), self._composer, on_queued=wake)
                await scheduler.run(self._stop)
            finally:
                await engine.dispose()

        self._thread = threading.Thread(target=asyncio.run, args=(main(),), name="scheduler", daemon=True)
        self._thread.start()

    async def stop(self) -> None:
        if self._thread is None:
            return
        await asyncio.to_thread(self._started.wait, 10)
        if self._loop is not None and self._stop is not None:
            with contextlib.suppress(RuntimeError):  # its loop already ended (it failed)
                self._loop.call_soon_threadsafe(self._stop.set)
        await asyncio.to_thread(self._thread.join, 30)

    async def __aenter__(self) -> Self:
        self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()
