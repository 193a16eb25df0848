"""The per-channel token bucket, with an injected clock (no sleeps)."""

from __future__ import annotations

import pytest

from broadcaster.ratelimit import TokenBucket


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_bucket_allows_a_burst_then_paces_at_the_rate() -> None:
    clock = Clock()
    bucket = TokenBucket(rate=30, burst=30, clock=clock)  # Telegram: 30 messages/s overall
    for _ in range(30):
        assert bucket.delay_needed() == 0
        await bucket.acquire()
    assert bucket.delay_needed() == pytest.approx(1 / 30)
    clock.now += 1 / 30
    assert bucket.delay_needed() == pytest.approx(0, abs=1e-9)


def test_provider_pause_blocks_until_it_ends_and_unlimited_never_waits() -> None:
    clock = Clock()
    bucket = TokenBucket(rate=0, clock=clock)
    assert bucket.delay_needed() == 0
    bucket.pause(5)  # a 429 with retry_after=5
    assert bucket.delay_needed() == pytest.approx(5)
    clock.now += 5
    assert bucket.delay_needed() == 0
