"""What a channel's dispatch loop tells the operator: metrics, one log line per change of state
(paused, resumed, breaker open and closed, rows dead-lettered), and what it did: a progress
line at its first batch, then at most every `PROGRESS_SECONDS`, and one when the loop ends.

Only our own words reach the log: the channel, counts, times and the kind of error (the name of
its class, "internal error"), never the provider's text, which may quote an address.
"""

from __future__ import annotations

import logging
import re
import time
from collections import Counter
from collections.abc import Sequence
from datetime import datetime

from broadcaster.delivery.outbox import DEAD, DELIVERED, Outcome
from broadcaster.logs import log_event
from broadcaster.metrics import OUTCOMES, Metrics
from broadcaster.models import utcnow

__all__ = ["PROGRESS_SECONDS", "ChannelReport", "error_kind"]

log = logging.getLogger("broadcaster.delivery.dispatch")

PROGRESS_SECONDS = 10.0
_GAVE_UP = re.compile(r"^gave up after \d+ attempts: ")
_KIND = re.compile(r"^[a-z][a-z ]{0,39}(?=:)")


def error_kind(error: str) -> str:
    """`unavailable` of "gave up after 8 attempts: unavailable: 421 …"; "other" when it has none."""
    found = _KIND.match(_GAVE_UP.sub("", error))
    return found.group(0) if found else "other"


def _outcome_label(outcome: Outcome) -> str:
    """A try to repeat is "retry"; a wait that uses no try (a rate limit, an earlier update) "deferred"."""
    return "deferred" if outcome.refund_attempt else OUTCOMES.get(outcome.status, outcome.status)


class ChannelReport:
    """One channel's metrics and log lines."""

    def __init__(self, channel: str, metrics: Metrics) -> None:
        self.channel = channel
        self._metrics = metrics
        self._paused_until: datetime | None = None
        self._since_progress: Counter[str] = Counter()
        self._last_progress: float | None = None
        metrics.breaker_open.labels(channel).set(0)

    def sent(self, seconds: float) -> None:
        self._metrics.send_seconds.labels(self.channel).observe(seconds)

    def rate_limited(self, retry_after: float, until: datetime | None) -> None:
        """A 429; `until`: the whole channel waits until then (None: only one target waits)."""
        self._metrics.rate_limited.labels(self.channel).inc()
        self._since_progress["rate_limited"] += 1
        if until is None:
            return
        already = self._paused_until is not None and self._paused_until > utcnow()
        self._paused_until = max(until, self._paused_until) if already and self._paused_until else until
        if already:
            return  # the other sends in flight when the channel paused: one line is enough
        log_event(
            log, "channel paused", logging.WARNING,
            channel=self.channel, reason="rate_limited", retry_after=retry_after, until=until,
        )  # fmt: skip

    def breaker_opened(self, failures: int, next_probe_at: datetime | None) -> None:
        """The channel stopped sending after `failures` transient failures in a row."""
        self._metrics.breaker_open.labels(self.channel).set(1)
        log_event(
            log, "channel breaker open", logging.WARNING,
            channel=self.channel, reason="unavailable", failures=failures, next_probe_at=next_probe_at,
        )  # fmt: skip

    def breaker_closed(self, opened_at: datetime) -> None:
        """A probe reached the provider: the channel sends again."""
        self._metrics.breaker_open.labels(self.channel).set(0)
        log_event(log, "channel breaker closed", channel=self.channel, opened_at=opened_at)

    def expired(self, count: int) -> None:
        """Rows dead-lettered untried: their retry window passed while the breaker was open."""
        if count:
            self._metrics.deliveries.labels(self.channel, "dead").inc(count)
            log_event(
                log, "deliveries dead", logging.ERROR, channel=self.channel, count=count, reason="window"
            )

    def recorded(self, outcomes: Sequence[Outcome]) -> None:
        """Outcomes just written to the outbox."""
        statuses = Counter(outcome.status for outcome in outcomes)
        labels = Counter(_outcome_label(outcome) for outcome in outcomes)
        for label, count in labels.items():
            self._metrics.deliveries.labels(self.channel, label).inc(count)
        self._since_progress.update(labels)
        dead = Counter(error_kind(outcome.error) for outcome in outcomes if outcome.status == DEAD)
        for kind, count in sorted(dead.items()):
            log_event(log, "deliveries dead", logging.ERROR, channel=self.channel, count=count, reason=kind)
        resumed = self._paused_until is not None and self._paused_until <= utcnow()
        if resumed and any(statuses[status] for status in DELIVERED):
            log_event(log, "channel resumed", channel=self.channel, paused_until=self._paused_until)
            self._paused_until = None
        now = time.monotonic()
        if self._last_progress is None or now - self._last_progress >= PROGRESS_SECONDS:
            self.log_progress()

    def log_progress(self) -> None:
        """What the channel did since the last progress line, if anything."""
        if not self._since_progress:
            return
        log_event(log, "channel progress", channel=self.channel, **dict(sorted(self._since_progress.items())))
        self._since_progress.clear()
        self._last_progress = time.monotonic()
