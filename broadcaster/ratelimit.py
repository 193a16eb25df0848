"""A token bucket per channel, with a pause the provider can impose (HTTP 429 `retry_after`)."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable


def bounded_pause(seconds: float, longest: float) -> float:
    """A provider's wait as one we honour: within `[0, longest]`; NaN or infinite is `longest`.

    >>> bounded_pause(1e12, longest=900)
    900
    """
    if math.isnan(seconds):
        return longest
    return min(max(seconds, 0.0), longest)


class TokenBucket:
    """`rate` tokens per second, at most `burst` saved up; `rate == 0` means unlimited.

    >>> bucket = TokenBucket(rate=30, burst=30)   # Telegram: 30 messages/s overall
    """

    def __init__(self, rate: float, burst: float | None = None, clock: Callable[[], float] = time.monotonic):
        self.rate = rate
        self.burst = burst if burst is not None else max(1.0, rate)
        self._clock = clock
        self._tokens = self.burst
        self._updated = clock()
        self._paused_until = 0.0
        self._lock = asyncio.Lock()

    def pause(self, seconds: float) -> None:
        """Stop handing out tokens for `seconds` (the provider asked us to slow down)."""
        self._paused_until = max(self._paused_until, self._clock() + seconds)

    def _refill(self, now: float) -> None:
        self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
        self._updated = now

    def delay_needed(self) -> float:
        """Seconds until a token is available now (0 if one is)."""
        now = self._clock()
        if now < self._paused_until:
            return self._paused_until - now
        if self.rate <= 0:
            return 0.0
        self._refill(now)
        return 0.0 if self._tokens >= 1 else (1 - self._tokens) / self.rate

    async def acquire(self) -> None:
        """Wait for a token (in arrival order)."""
        async with self._lock:
            while (wait := self.delay_needed()) > 0:
                await asyncio.sleep(wait)
            if self.rate > 0:
                self._tokens -= 1
