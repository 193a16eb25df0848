"""Dispatch workers (DESIGN §6): one loop per channel, so one channel failing never slows another.

Each loop claims due rows with a short lease, renewed by a heartbeat while it holds them,
sends them concurrently (bounded by the channel's concurrency and its pacer: never more than
its limit in any sliding second), and writes outcomes back in small batches. Provider errors become
delivery states: rate limits wait without using a retry, permanent refusals deactivate the
subscription, transient failures back off exponentially with jitter until the row's retry window
(`retry_window_seconds` from its creation) is spent, then `dead`.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager, nullcontext
from datetime import datetime, timedelta
from typing import Self

from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from broadcaster.config import DispatchSettings
from broadcaster.db import LoopWriter, SessionFactory
from broadcaster.delivery import channel_pause, outbox
from broadcaster.delivery.breaker import Breaker
from broadcaster.delivery.channel_report import ChannelReport
from broadcaster.delivery.outbox import ClaimedDelivery, Outcome
from broadcaster.delivery.runtimes import ChannelRuntime, close_channels
from broadcaster.delivery.shared_pacing import SharedPacing, deployment_pacing, pacer_for
from broadcaster.inbox.answers import HandOff
from broadcaster.loop_health import LoopHealth
from broadcaster.message import RenderedMessage
from broadcaster.metrics import Metrics
from broadcaster.models import Rendition, Subscription, utcnow
from channels.base import (
    DeliveryError,
    PacesEachMessage,
    RateLimited,
    Rejected,
    Reply,
    Replying,
    SendResult,
    SharesPacing,
    Target,
    TargetBusy,
    Unavailable,
)
from channels.pacing import bounded_pause

__all__ = [
    "ChannelWorker",
    "Dispatcher",
    "FLUSH_EVERY",
    "FLUSH_INTERVAL",
    "THREAD_WAIT_SECONDS",
    "backoff_delay",
]

log = logging.getLogger(__name__)

FLUSH_EVERY = 100
FLUSH_INTERVAL = 0.1
THREAD_WAIT_SECONDS = 2.0


def backoff_delay(attempts: int, settings: DispatchSettings, rng: random.Random) -> float:
    """Exponential backoff with 'equal jitter': half fixed, half random, capped."""
    doublings = min(max(0, attempts - 1), 64)  # past 2**64 every base is beyond the cap; 2**1024 overflows
    ceiling = min(settings.backoff_max_seconds, settings.backoff_base_seconds * 2.0**doublings)
    return ceiling / 2 + rng.uniform(0, ceiling / 2)


class ChannelWorker:
    """Delivers one channel's outbox rows until `stop` is set."""

    def __init__(
        self,
        name: str,
        runtime: ChannelRuntime,
        sessions: SessionFactory,
        settings: DispatchSettings,
        public_base_url: str,
        rng: random.Random | None = None,
        writer: LoopWriter | None = None,
        metrics: Metrics | None = None,
        pacing: SharedPacing | None = None,
    ) -> None:
        self.name = name
        self.report = ChannelReport(name, metrics or Metrics())
        self._writer = writer
        self.runtime = runtime
        self._sessions = sessions
        self._settings = settings
        self._base_url = public_base_url.rstrip("/")
        # One budget per bot: "telegram:<bot id>", so two brands sharing a Redis never share one.
        scope = getattr(runtime.channel, "pacing_scope", name)
        self._pacer = pacer_for(pacing, scope, runtime.rate_per_second)
        if pacing is not None and isinstance(runtime.channel, SharesPacing):
            runtime.channel.share_pacing(pacing)
        self._turn_per_send = True
        if isinstance(runtime.channel, PacesEachMessage):
            runtime.channel.pace_messages_with(self._pacer)
            self._turn_per_send = False
        self.breaker = Breaker(settings.breaker_failures, settings.breaker_probe_seconds)
        self._pause_shown: tuple[datetime | None, int] = (None, -1)  # first look: clear a stale pause
        self._slots = asyncio.Semaphore(runtime.concurrency)
        self._renditions: dict[int, RenderedMessage] = {}  # per update and locale: a few per update
        # Per delivery id, from its claim until its outcome is written: never the whole audience.
        self._tokens: dict[int, tuple[str, str]] = {}  # (unsubscribe, reply) tokens of its subscription
        self._thread_refs: dict[int, str | None] = {}
        self._rng = rng or random.Random()
        self._wake = asyncio.Event()
        self._claim_wanted = False
        self._handed: list[ClaimedDelivery] = []
        self._held: dict[int, str] = {}  # delivery id -> claim token, until its outcome is written
        self.sent = 0

    def wake(self) -> None:
        """New rows are due now (an answer to a customer): claim without waiting for the next poll."""
        self._claim_wanted = True
        self._wake.set()

    def take(self, delivery: ClaimedDelivery) -> None:
        """Send a row this process already claimed (committed) — no claim, no poll."""
        self._handed.append(delivery)
        self._held[delivery.id] = delivery.claim_token
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        """Claim, send and record until `stop`; a failure of the loop itself (the database) raises.

        Sends still in flight when it raises are cancelled and their leases no longer renewed:
        their rows are retried once the lease expires, as after a crash.
        """
        inflight: set[asyncio.Task[Outcome]] = set()
        heartbeat = asyncio.create_task(self._heartbeat())
        try:
            await self._loop(stop, inflight)
        finally:
            heartbeat.cancel()
            for task in inflight:
                task.cancel()
            await asyncio.gather(heartbeat, return_exceptions=True)  # no beat after the loop ends
            self._held = {d.id: d.claim_token for d in self._handed}
            self._tokens.clear()  # the rows in flight were cancelled: claimed again, loaded again
            self._thread_refs.clear()
            self.report.log_progress()

    async def _heartbeat(self) -> None:
        """Every third of the lease, extend the leases of the rows this loop holds: one UPDATE.

        A send slower than the lease keeps its row; once the process dies, its rows are free
        within one lease. A failed beat is logged; the next one tries again.
        """
        lease = self._settings.lease_seconds
        while True:
            await asyncio.sleep(lease / 3)
            tokens = set(self._held.values())
            if not tokens:
                continue
            try:
                async with self._sessions() as session:
                    await outbox.renew(session, self.name, tokens, lease)
            except (SQLAlchemyError, OSError) as exc:
                log.warning("%s: leases not renewed (%s)", self.name, type(exc).__name__)

    async def _loop(self, stop: asyncio.Event, inflight: set[asyncio.Task[Outcome]]) -> None:
        done_outcomes: list[Outcome] = []
        last_flush = time.monotonic()
        last_claim, more_due = 0.0, False
        queue_depth = max(self.runtime.concurrency * 4, 16)
        async with self._sessions() as session:
            while not stop.is_set() or inflight or self._handed:
                handed, self._handed = self._handed, []
                inflight.update(asyncio.create_task(self._deliver(d)) for d in handed)
                claimed: list[ClaimedDelivery] = []
                room = queue_depth - len(inflight)
                # Refill by half a queue at a time: a claim is a write transaction, ~10-25 ms on a busy
                # loop, so claiming the 1-2 rows that just finished would spend the loop on claims.
                # Rows handed over need no claim; nor does a send that finished, unless the last
                # claim was full (more rows are due), someone asked (`wake`) or the poll is due:
                # an empty claim is a write transaction that the inbox and the webhooks wait for.
                poll_due = time.monotonic() - last_claim >= self._settings.poll_interval_seconds
                wanted, self._claim_wanted = self._claim_wanted or more_due or poll_due, False
                if wanted and not stop.is_set() and (room >= queue_depth // 2 or not inflight):
                    limit = self.breaker.claim_limit(min(room, self._settings.batch_size))
                    if limit:
                        claimed = await outbox.claim(session, self.name, limit, self._settings.lease_seconds)
                        last_claim, more_due = time.monotonic(), len(claimed) == limit
                        self._held.update((d.id, d.claim_token) for d in claimed)
                    if claimed and self.breaker.is_open:
                        self.breaker.probing()
                    await self._load_context(session, claimed)
                    inflight.update(asyncio.create_task(self._deliver(d)) for d in claimed)
                if inflight:
                    done = await self._next_done(inflight, 0.02 if claimed else FLUSH_INTERVAL)
                    inflight -= done
                    done_outcomes.extend(task.result() for task in done)
                elif not claimed:
                    await self._idle(stop)
                now = time.monotonic()
                if done_outcomes and (
                    len(done_outcomes) >= FLUSH_EVERY or now - last_flush >= FLUSH_INTERVAL or not inflight
                ):
                    await self._record(session, done_outcomes)
                    done_outcomes, last_flush = [], now
                await self._show_pause(session)
            await self._record(session, done_outcomes)

    async def _show_pause(self, session: AsyncSession) -> None:
        """Tell `broadcaster deliveries` when the breaker opens, probes or closes: one write each;
        while it is open, rows whose retry window has passed go dead at each probe."""
        opened_at = self.breaker.opened_at
        shown = (opened_at, self.breaker.probes if opened_at else 0)
        if shown == self._pause_shown:
            return
        next_probe_at = self.breaker.next_probe_at()
        if opened_at is None or next_probe_at is None:
            await channel_pause.clear(session, self.name)
        else:
            await channel_pause.store(session, self.name, opened_at, next_probe_at)
            window_start = utcnow() - timedelta(seconds=self._settings.retry_window_seconds)
            self.report.expired(await outbox.expire(session, self.name, window_start))
        self._pause_shown = shown

    async def _record(self, session: AsyncSession, outcomes: list[Outcome]) -> None:
        """Write outcomes back: one synchronous call on the loop on SQLite (`LoopWriter`)."""
        if not outcomes:
            return
        if self._writer is None:
            await outbox.record(session, outcomes)
        else:
            await self._writer.run(
                lambda connection: outbox.record_sync(connection, outcomes),
                lambda: outbox.record(session, outcomes),
            )
        for outcome in outcomes:
            self._held.pop(outcome.delivery.id, None)
            self._tokens.pop(outcome.delivery.id, None)
            self._thread_refs.pop(outcome.delivery.id, None)
        self.report.recorded(outcomes)

    async def _next_done(
        self, inflight: set[asyncio.Task[Outcome]], timeout: float
    ) -> set[asyncio.Task[Outcome]]:
        """Sends that finish within `timeout`; returns early when rows are handed over or wanted."""
        waker = asyncio.ensure_future(self._wake.wait())
        done, _ = await asyncio.wait({*inflight, waker}, timeout=timeout, return_when="FIRST_COMPLETED")
        waker.cancel()
        self._wake.clear()
        return {task for task in done if task is not waker}  # type: ignore[misc]

    async def _idle(self, stop: asyncio.Event) -> None:
        """Wait for the next poll, unless `wake` or `stop` comes first."""
        waiters = [asyncio.ensure_future(self._wake.wait()), asyncio.ensure_future(stop.wait())]
        await asyncio.wait(
            waiters, timeout=self._settings.poll_interval_seconds, return_when="FIRST_COMPLETED"
        )
        for waiter in waiters:
            waiter.cancel()
        self._wake.clear()

    async def _load_context(self, session: AsyncSession, claimed: Sequence[ClaimedDelivery]) -> None:
        missing = {d.rendition_id for d in claimed if d.rendition_id is not None} - self._renditions.keys()
        if missing:
            renditions = await session.exec(select(Rendition).where(col(Rendition.id).in_(missing)))
            for rendition in renditions:
                assert rendition.id is not None
                try:
                    self._renditions[rendition.id] = RenderedMessage.from_json(rendition.payload)
                except (ValueError, TypeError, KeyError, AttributeError) as exc:  # its deliveries fail alone
                    log.error("rendition %s cannot be read (%s)", rendition.id, type(exc).__name__)
        subscriptions = {d.subscription_id for d in claimed if d.subscription_id}
        if subscriptions:
            statement = select(
                col(Subscription.id), col(Subscription.unsubscribe_token), col(Subscription.reply_token)
            ).where(col(Subscription.id).in_(subscriptions))
            tokens = {sid: (unsubscribe, reply) for sid, unsubscribe, reply in await session.exec(statement)}
            self._tokens.update(
                (d.id, tokens[d.subscription_id]) for d in claimed if d.subscription_id in tokens
            )
        if self.runtime.channel.capabilities.threads:
            for delivery in claimed:
                if delivery.subscription_id is None and delivery.rendition_id is not None:
                    self._thread_refs[delivery.id] = await outbox.thread_ref(session, delivery)

    def _target(self, delivery: ClaimedDelivery) -> Target:
        tokens = self._tokens.get(delivery.id) if delivery.subscription_id is not None else None
        if tokens is None:
            thread = self._thread_refs.pop(delivery.id, "") or ""
            return Target(address=delivery.target, locale=delivery.locale, thread_ref=thread)
        unsubscribe, reply = tokens
        return Target(
            address=delivery.target,
            locale=delivery.locale,
            unsubscribe_url=f"{self._base_url}/unsubscribe/{unsubscribe}",
            reply_token=f"{delivery.update_id}.{reply}",
        )

    async def _deliver(self, delivery: ClaimedDelivery) -> Outcome:
        """Send one row and say what became of it; whatever goes wrong is this row's outcome."""
        try:
            return await self._attempt(delivery)
        except Exception as exc:  # an adapter bug must not kill the channel loop: record it, retry
            log.exception("%s adapter raised unexpectedly for delivery %s", self.name, delivery.id)
            return self._retry_or_die(delivery, f"internal error: {type(exc).__name__}")
        finally:
            self.breaker.settled()

    async def _attempt(self, delivery: ClaimedDelivery) -> Outcome:
        if delivery.id in self._thread_refs and self._thread_refs[delivery.id] is None:
            del self._thread_refs[delivery.id]
            return Outcome(  # keep the story in order: the previous update goes out first
                delivery,
                outbox.PENDING,
                next_attempt_at=utcnow() + timedelta(seconds=THREAD_WAIT_SECONDS),
                error="waiting for the previous update of this incident on this channel",
                refund_attempt=True,
            )
        try:
            turn = self._pacer.turn(self._messages_in(delivery)) if self._turn_per_send else nullcontext()
            async with self._slots, turn:
                started = time.monotonic()
                result = await self._send(delivery)
                self.report.sent(time.monotonic() - started)
        except RateLimited as exc:
            return self._wait(delivery, exc)
        except Rejected as exc:
            self._provider_reached()
            return Outcome(delivery, outbox.FAILED, error=exc.reason, deactivate_subscription=True)
        except DeliveryError as exc:
            if isinstance(exc, Unavailable) and self.breaker.failed():
                self.report.breaker_opened(self._settings.breaker_failures, self.breaker.next_probe_at())
            return self._retry_or_die(delivery, f"{type(exc).__name__.lower()}: {exc.reason}")
        self._provider_reached()
        self.sent += 1
        # A capture-mode channel stored the message instead of sending it: say so, never "sent".
        status = outbox.SENT if self.runtime.live else outbox.CAPTURED
        return Outcome(delivery, status, provider_message_id=result.provider_message_id, sent_at=utcnow())

    def _provider_reached(self) -> None:
        opened_at = self.breaker.reached()
        if opened_at is not None:
            self.report.breaker_closed(opened_at)

    def _messages_in(self, delivery: ClaimedDelivery) -> int:
        """How many provider messages a broadcast row sends (a thread, a split message); else 1."""
        rendition = self._renditions.get(delivery.rendition_id) if delivery.rendition_id is not None else None
        return len(rendition.parts) if rendition is not None and rendition.parts else 1

    async def _send(self, delivery: ClaimedDelivery) -> SendResult:
        """A broadcast (its rendition, personalised), an answer in the customer's thread, or an alert."""
        key = delivery.idempotency_key
        if delivery.kind == outbox.ANSWER:
            channel = self.runtime.channel
            if not isinstance(channel, Replying):
                raise Rejected(f"the {self.name} channel cannot answer customers")
            message = RenderedMessage.from_json(delivery.payload)
            return await channel.reply(message, Reply.from_dict(delivery.reply or {}), idempotency_key=key)
        if delivery.kind == outbox.ALERT or delivery.rendition_id is None:
            message = RenderedMessage.from_json(delivery.payload)
            return await self.runtime.channel.send(
                message, Target(address=delivery.target, locale=delivery.locale), idempotency_key=key
            )
        target = self._target(delivery)
        rendition = self._renditions.get(delivery.rendition_id)
        if rendition is None:
            raise Unavailable(f"rendition {delivery.rendition_id} cannot be read")
        if target.unsubscribe_url:
            rendition = rendition.personalise(unsubscribe_url=target.unsubscribe_url)
        return await self.runtime.channel.send(rendition, target, idempotency_key=key)

    def _wait(self, delivery: ClaimedDelivery, exc: RateLimited) -> Outcome:
        """Wait as the provider asked, at most `max_pause_seconds`: the whole channel, or only this
        target (`TargetBusy`: one chat, one browser subscription). A wait is not a failed try."""
        wait = bounded_pause(exc.retry_after, self._settings.max_pause_seconds)
        channel_wide = not isinstance(exc, TargetBusy)
        if channel_wide:
            self._pacer.pause(wait)
        self.report.rate_limited(wait, utcnow() + timedelta(seconds=wait) if channel_wide else None)
        capped = f" (waiting {wait:g} s, max_pause_seconds)" if wait < exc.retry_after else ""
        return Outcome(
            delivery,
            outbox.PENDING,
            next_attempt_at=utcnow() + timedelta(seconds=wait),
            error=f"rate limited: {exc.reason}{capped}",
            refund_attempt=True,
        )

    def _retry_or_die(self, delivery: ClaimedDelivery, reason: str) -> Outcome:
        delay = backoff_delay(delivery.attempts, self._settings, self._rng)
        next_attempt_at = utcnow() + timedelta(seconds=delay)
        if self._past_retries(delivery, next_attempt_at):
            return Outcome(
                delivery, outbox.DEAD, error=f"gave up after {delivery.attempts} attempts: {reason}"
            )
        return Outcome(delivery, outbox.PENDING, next_attempt_at=next_attempt_at, error=reason)

    def _past_retries(self, delivery: ClaimedDelivery, next_attempt_at: datetime) -> bool:
        """The next try would fall past the row's retry window, or past `max_attempts` when set."""
        cap = self._settings.max_attempts
        if cap is not None and delivery.attempts >= cap:
            return True
        return next_attempt_at > delivery.retry_from + timedelta(seconds=self._settings.retry_window_seconds)


class Dispatcher:
    """Runs one `ChannelWorker` per channel; `run` until stopped, or `deliver` until updates settle.

    Each channel's loop is supervised by `health`: one that dies is restarted and reported,
    the others go on.
    """

    def __init__(
        self,
        sessions: SessionFactory,
        runtimes: Mapping[str, ChannelRuntime],
        settings: DispatchSettings,
        public_base_url: str,
        health: LoopHealth | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self._sessions = sessions
        self._settings = settings
        self.health = health or LoopHealth(sessions)
        self.metrics = metrics or Metrics()
        writer = LoopWriter(sessions) if runtimes else None
        redis_url = settings.redis_url.get_secret_value() if settings.redis_url is not None else None
        self.pacing = deployment_pacing(redis_url, sessions.kw.get("bind")) if runtimes else None
        self.workers = {
            name: ChannelWorker(
                name,
                runtime,
                sessions,
                settings,
                public_base_url,
                writer=writer,
                metrics=self.metrics,
                pacing=self.pacing,
            )
            for name, runtime in runtimes.items()
        }

    def wake(self, channel: str) -> None:
        if channel in self.workers:
            self.workers[channel].wake()

    def hand_off(self) -> HandOff:
        """How to write rows these workers will send as soon as they are handed over (`take`)."""
        return HandOff(frozenset(self.workers), self._settings.lease_seconds)

    def take(self, claimed: Sequence[ClaimedDelivery]) -> None:
        for delivery in claimed:
            self.workers[delivery.channel].take(delivery)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """The dispatcher owns its channels: their connections close with it."""
        await close_channels({name: worker.runtime for name, worker in self.workers.items()})

    @asynccontextmanager
    async def running(self) -> AsyncIterator[Self]:
        """Its loops run in the background until the block ends; then they finish what they hold."""
        stop = asyncio.Event()
        runner = asyncio.create_task(self.run(stop))
        try:
            yield self
        finally:
            stop.set()
            await runner

    async def run(self, stop: asyncio.Event) -> None:
        try:
            async with asyncio.TaskGroup() as group:
                for name, worker in self.workers.items():
                    group.create_task(self.health.supervise(name, worker.run, stop))
        finally:
            if self.pacing is not None:
                await self.pacing.aclose()

    async def deliver(
        self,
        update_ids: Sequence[int],
        *,
        on_progress: Callable[[dict[str, dict[str, int]]], None] | None = None,
        timeout: float = 120.0,
        retry_horizon: float = 15.0,
    ) -> dict[str, dict[str, int]]:
        """Send until every delivery of `update_ids` is final, or only waits beyond `retry_horizon`."""
        stop = asyncio.Event()
        runner = asyncio.create_task(self.run(stop))
        deadline = time.monotonic() + timeout
        counts: dict[str, dict[str, int]] = {}
        try:
            while time.monotonic() < deadline and not runner.done():
                async with self._sessions() as session:
                    counts = await outbox.counts_by_channel(session, update_ids)
                    due = await outbox.next_due_at(session, update_ids)
                if on_progress:
                    on_progress(counts)
                if due is None or due > utcnow() + timedelta(seconds=retry_horizon):
                    break
                await asyncio.sleep(0.2)
        finally:
            stop.set()
            await runner
        async with self._sessions() as session:
            counts = await outbox.counts_by_channel(session, update_ids)
        if on_progress:
            on_progress(counts)
        return counts
