"""Pacing that never bursts over a provider's limit, with a pause the provider can impose (429).

The guarantee is the provider's own wording: never more than `limit` sends in any sliding window
of `window` seconds (Telegram: 30 in any second overall, 1 per second to a chat, 20 a minute to a
group). A send counts from the moment it is granted until `window` after its response, so a slow
or jittery network can never squeeze `limit + 1` arrivals into one window at the provider. Grants
are also spaced `window / limit` apart: no burst at start, none after a pause.

`Pacer` is the seam: the in-process `SlidingWindow` here; a shared one (all workers of a
deployment drawing from one budget) plugs in behind the same three methods.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Protocol

__all__ = ["Pacer", "SlidingWindow", "Unlimited", "bounded_pause", "pacer_for_rate"]


def bounded_pause(seconds: float, longest: float) -> float:
    """A provider's wait as one we honour: within `[0, longest]`; NaN or infinite is `longest`.

    >>> bounded_pause(1e12, longest=900)
    900
    """
    if math.isnan(seconds):
        return longest
    return min(max(seconds, 0.0), longest)


class Pacer(Protocol):
    """A budget of sends: `turn()` around each send, `pause(seconds)` when the provider says 429."""

    def turn(self, cost: int = 1) -> AbstractAsyncContextManager[None]:
        """Wait until a send of `cost` messages fits the budget; they count until `window` after it ends."""
        ...

    def pause(self, seconds: float) -> None:
        """Grant nothing for `seconds`, then resume at the even pace (nothing saved up)."""
        ...


class Unlimited:
    """No budget (a channel without a provider limit), only the provider's pauses."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._paused_until = -math.inf

    def pause(self, seconds: float) -> None:
        """Grant nothing for `seconds`."""
        self._paused_until = max(self._paused_until, self._clock() + max(seconds, 0.0))

    def delay_needed(self) -> float:
        """Seconds until the pause ends (0: now)."""
        return max(0.0, self._paused_until - self._clock())

    @asynccontextmanager
    async def turn(self, cost: int = 1) -> AsyncIterator[None]:
        while (wait := self.delay_needed()) > 0:
            await asyncio.sleep(wait)  # the provider's pause, not synchronisation
        yield


class SlidingWindow:
    """Never more than `limit` sends in any `window` seconds, granted `window / limit` apart.

    >>> telegram = SlidingWindow(limit=30, window=1.0)   # 30 messages in any second
    >>> async with telegram.turn():
    ...     await bot.send_message(...)
    """

    def __init__(
        self, limit: int, window: float, *, spaced: bool = True, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if limit < 1 or not window > 0:
            raise ValueError(f"a sliding window needs limit >= 1 and window > 0, not {limit} in {window} s")
        self.limit = limit
        self.window = window
        self.spacing = window / limit if spaced else 0.0
        self._clock = clock
        self._ended: deque[float] = deque()  # when each recent send ended, oldest first
        self._in_flight = 0
        self._next_grant = -math.inf
        self._lock = asyncio.Lock()
        self._ended_event = asyncio.Event()

    def pause(self, seconds: float) -> None:
        """Grant nothing for `seconds`; the first send after is granted at the pause's end, the
        next one `spacing` later: the budget is drained, not refilled."""
        self._next_grant = max(self._next_grant, self._clock() + max(seconds, 0.0))

    def delay_needed(self, extra: int = 0) -> float | None:
        """Seconds until `1 + extra` more sends fit (0: now); None while sends in flight fill it."""
        now = self._clock()
        while self._ended and self._ended[0] + self.window <= now:  # the same sum as the wait below
            self._ended.popleft()
        wait = max(0.0, self._next_grant - now)
        busy = self._in_flight + len(self._ended) + extra - self.limit + 1
        if busy <= 0:
            return wait
        if busy > len(self._ended):
            return None
        return max(wait, self._ended[busy - 1] + self.window - now)

    def idle(self) -> bool:
        """Nothing in flight, nothing in the window, no pause: forgetting this window loses nothing."""
        return self.delay_needed(extra=self.limit - 1) == 0

    def start(self, cost: int = 1) -> None:
        """Count a send of `cost` messages granted now (the caller checked `delay_needed(cost - 1) == 0`)."""
        now = self._clock()
        self._in_flight += cost
        # Woken a little late (sleep overshoot): keep the schedule, or every overshoot is rate lost.
        # Later than one spacing: the pacer was idle, and idle time saves nothing up.
        on_schedule = self._next_grant <= now <= self._next_grant + self.spacing
        self._next_grant = (
            self._next_grant if on_schedule else max(self._next_grant, now)
        ) + self.spacing * cost

    def end(self, cost: int = 1) -> None:
        """The send `start` counted has ended: its messages keep counting for `window` from now."""
        self._in_flight -= cost
        self._ended.extend([self._clock()] * cost)
        self._ended_event.set()

    @asynccontextmanager
    async def turn(self, cost: int = 1) -> AsyncIterator[None]:
        """A send of `cost` messages (a message longer than `limit` waits for an empty window)."""
        cost = min(max(cost, 1), self.limit)
        async with self._lock:  # in arrival order
            while (wait := self.delay_needed(extra=cost - 1)) != 0:
                if wait is None:
                    self._ended_event.clear()
                    await self._ended_event.wait()
                else:
                    await asyncio.sleep(wait)  # pacing the provider's rate, not synchronisation
            self.start(cost)
        try:
            yield
        finally:
            self.end(cost)


def pacer_for_rate(rate_per_second: float) -> Pacer:
    """A channel's configured `rate_per_second` as a sliding window; 0 is unlimited.

    >>> pacer_for_rate(30).limit, pacer_for_rate(30).window   # 30 in any second
    (30, 1.0)
    >>> pacer_for_rate(0.2).window                            # 1 in any 5 s
    5.0
    """
    if rate_per_second <= 0:
        return Unlimited()
    limit = max(1, math.floor(rate_per_second))
    return SlidingWindow(limit, limit / rate_per_second)
