"""A channel's circuit breaker: after `failures` transient failures in a row (connection refused,
421/4xx, 5xx, timeouts) the channel stops claiming rows and sends one probe per `probe_seconds`;
the first probe that reaches the provider closes it. One connection attempt per interval instead
of hundreds a second against a dead relay.

>>> breaker = Breaker(failures=5, probe_seconds=30)
>>> breaker.claim_limit(200)   # closed: claim as usual
200
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta

from broadcaster.models import utcnow

__all__ = ["Breaker"]


class Breaker:
    """One channel's breaker in one process; `clock` is monotonic seconds (injected in tests)."""

    def __init__(
        self, failures: int, probe_seconds: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._failures = failures
        self._probe_seconds = probe_seconds
        self._clock = clock
        self._streak = 0
        self._next_probe = 0.0
        self._probing = False
        self.opened_at: datetime | None = None  # wall time, for the operator
        self.probes = 0  # probes sent since the process started

    @property
    def is_open(self) -> bool:
        return self.opened_at is not None

    def next_probe_at(self) -> datetime | None:
        """When the next probe may go (None while closed)."""
        if self.opened_at is None:
            return None
        return utcnow() + timedelta(seconds=max(0.0, self._next_probe - self._clock()))

    def claim_limit(self, wanted: int) -> int:
        """Rows the channel may claim now: `wanted` while closed; while open, one when a probe is due."""
        if self.opened_at is None:
            return wanted
        return 0 if self._probing or self._clock() < self._next_probe else min(wanted, 1)

    def probing(self) -> None:
        """A probe row was claimed: no other until it settles and the interval has passed."""
        self._probing = True
        self._next_probe = self._clock() + self._probe_seconds
        self.probes += 1

    def failed(self) -> bool:
        """A transient failure; True when it opens the breaker."""
        self._streak += 1
        self._probing = False
        if self.opened_at is not None or self._streak < self._failures:
            return False
        self.opened_at = utcnow()
        self._next_probe = self._clock() + self._probe_seconds
        return True

    def reached(self) -> datetime | None:
        """The provider answered (sent, or refused this one target for good); when it closes the
        breaker, the time it had opened."""
        opened_at, self.opened_at = self.opened_at, None
        self._streak, self._probing = 0, False
        return opened_at

    def settled(self) -> None:
        """A try that says nothing about the provider (a rate limit, an adapter bug) ended."""
        self._probing = False
