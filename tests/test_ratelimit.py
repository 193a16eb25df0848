"""The sliding-window pacer, with an injected clock (no sleeps): never more than N in any window."""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass

import pytest

from channels.pacing import SlidingWindow, Unlimited, pacer_for_rate


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass(frozen=True)
class Send:
    granted: float
    ended: float


def run_greedy(
    window: SlidingWindow,
    clock: Clock,
    sends: int,
    *,
    concurrency: int = 8,
    pauses: dict[int, float] | None = None,
    seed: int = 7,
) -> list[Send]:
    """Send as fast as the pacer lets, `concurrency` at a time, each taking a random 0–80 ms."""
    rng = random.Random(seed)
    pauses = pauses or {}
    in_flight: list[tuple[float, float]] = []  # (ends at, granted at)
    done: list[Send] = []
    granted = 0
    for _ in range(sends * 4 + 100):  # each turn grants or ends a send
        if granted == sends and not in_flight:
            return done
        if granted in pauses:
            window.pause(pauses.pop(granted))
        wait = window.delay_needed() if granted < sends and len(in_flight) < concurrency else None
        if in_flight and (wait is None or in_flight[0][0] <= clock.now + wait):
            clock.now, started = heapq.heappop(in_flight)
            window.end()
            done.append(Send(started, clock.now))
            continue
        assert wait is not None, "the pacer waits for a send that is not in flight"
        clock.now += wait
        window.start()
        heapq.heappush(in_flight, (clock.now + rng.uniform(0, 0.08), clock.now))
        granted += 1
    raise AssertionError("the simulation did not finish")


def most_in_any_window(times: list[float], span: float) -> int:
    times = sorted(times)
    return max(sum(1 for t in times[i:] if t < start + span) for i, start in enumerate(times))


def assert_never_over(sends: list[Send], limit: int, span: float) -> None:
    """However the network delays each request between grant and response, the provider never
    sees more than `limit` in one window: every send overlaps fewer than `limit` earlier ones."""
    for send in sends:
        overlapping = [
            other
            for other in sends
            if other is not send and other.granted <= send.granted and other.ended + span > send.granted
        ]
        assert len(overlapping) < limit, f"{len(overlapping) + 1} sends could arrive in {span} s"
    assert most_in_any_window([s.granted for s in sends], span) <= limit
    assert most_in_any_window([s.ended for s in sends], span) <= limit


def assert_never_ahead_of_the_even_pace(granted: list[float], spacing: float) -> None:
    """The k-th grant after `granted[0]` is never before `(k - 1) * spacing` (no burst; a grant
    that was woken late may catch up one spacing)."""
    for k, at in enumerate(granted):
        assert at - granted[0] >= (k - 1) * spacing - 1e-9, f"grant {k} is ahead of the even pace"


def test_never_more_than_thirty_in_any_second_over_a_long_run_from_the_very_start() -> None:
    clock = Clock()
    start = clock.now
    sends = run_greedy(SlidingWindow(30, 1.0, clock=clock), clock, 900)

    assert len(sends) == 900
    assert_never_over(sends, 30, 1.0)
    granted = sorted(s.granted for s in sends)
    assert sum(1 for t in granted if t < start + 1.0) <= 30  # no start burst
    assert granted[1] - granted[0] >= 1 / 30 - 1e-9
    assert_never_ahead_of_the_even_pace(granted, 1 / 30)
    assert 900 / (clock.now - start) >= 0.9 * 30  # paced, not starved


def test_a_pause_grants_nothing_then_resumes_at_the_even_pace_not_with_a_burst() -> None:
    clock = Clock()
    window = SlidingWindow(30, 1.0, clock=clock)
    sends = run_greedy(window, clock, 600, pauses={200: 5.0, 400: 0.5})
    pause_at: dict[float, float] = {}
    granted = sorted(s.granted for s in sends)
    for before, after in zip(granted, granted[1:], strict=False):
        if after - before > 0.4:
            pause_at[before] = after
    assert len(pause_at) == 2
    assert_never_over(sends, 30, 1.0)
    for resumed in pause_at.values():
        burst = [t for t in granted if resumed <= t < resumed + 1.0]
        assert len(burst) <= 30
        assert burst[1] - burst[0] >= 1 / 30 - 1e-9
        assert_never_ahead_of_the_even_pace(burst, 1 / 30)


def test_a_pause_drains_what_was_saved_up() -> None:
    clock = Clock()
    window = SlidingWindow(30, 1.0, clock=clock)
    clock.now += 60  # a minute idle saves nothing up
    window.pause(3)
    assert window.delay_needed() == pytest.approx(3)
    clock.now += 3
    window.start()
    window.end()
    assert window.delay_needed() == pytest.approx(1 / 30)


def test_sends_still_in_flight_fill_the_window() -> None:
    clock = Clock()
    window = SlidingWindow(2, 1.0, spaced=False, clock=clock)
    window.start()
    window.start()
    assert window.delay_needed() is None  # when they end is not known yet
    clock.now += 5
    window.end()
    assert window.delay_needed() == pytest.approx(1.0)  # a window after it ended, not after it began


def test_a_send_of_several_messages_counts_each() -> None:
    clock = Clock()
    window = SlidingWindow(4, 1.0, spaced=False, clock=clock)
    window.start(3)  # a message Telegram receives as three
    window.end(3)
    assert window.delay_needed() == 0
    assert window.delay_needed(extra=1) == pytest.approx(1.0)


def test_one_message_a_second_per_chat() -> None:
    clock = Clock()
    sends = run_greedy(SlidingWindow(1, 1.0, clock=clock), clock, 50, concurrency=1)
    assert_never_over(sends, 1, 1.0)


def test_twenty_a_minute_per_group() -> None:
    clock = Clock()
    sends = run_greedy(SlidingWindow(20, 60.0, spaced=False, clock=clock), clock, 200, concurrency=3)
    assert_never_over(sends, 20, 60.0)
    assert len(sends) == 200


def test_a_configured_rate_becomes_a_window() -> None:
    thirty = pacer_for_rate(30)
    assert isinstance(thirty, SlidingWindow) and (thirty.limit, thirty.window) == (30, 1.0)
    slow = pacer_for_rate(0.2)  # X: 1 post in any 5 s
    assert isinstance(slow, SlidingWindow) and (slow.limit, slow.window) == (1, pytest.approx(5.0))
    assert isinstance(pacer_for_rate(0), Unlimited)
    with pytest.raises(ValueError, match="limit >= 1"):
        SlidingWindow(0, 1.0)


def test_provider_pause_blocks_until_it_ends_and_unlimited_never_waits() -> None:
    clock = Clock()
    unlimited = Unlimited(clock=clock)
    assert unlimited.delay_needed() == 0
    unlimited.pause(5)  # a 429 with retry_after=5
    assert unlimited.delay_needed() == pytest.approx(5)
    clock.now += 5
    assert unlimited.delay_needed() == 0
