"""The channel circuit breaker, on an injected clock."""

from __future__ import annotations

from broadcaster.delivery.breaker import Breaker


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def opened(clock: Clock) -> Breaker:
    breaker = Breaker(failures=3, probe_seconds=30, clock=clock)
    assert [breaker.failed() for _ in range(3)] == [False, False, True]
    return breaker


def test_k_transient_failures_in_a_row_open_it_and_a_success_between_resets_the_count() -> None:
    breaker = Breaker(failures=3, probe_seconds=30, clock=Clock())
    breaker.failed(), breaker.failed()
    assert breaker.reached() is None
    assert not breaker.failed() and not breaker.failed()
    assert breaker.claim_limit(200) == 200
    assert breaker.failed() and breaker.is_open


def test_an_open_breaker_lets_one_probe_out_per_interval() -> None:
    clock = Clock()
    breaker = opened(clock)
    probes = 0
    for step in range(1, 601):  # ten minutes in one-second steps, the relay still down
        clock.now = float(step)
        if breaker.claim_limit(200):
            breaker.probing()
            assert breaker.claim_limit(200) == 0, "one probe at a time"
            probes += 1
            assert not breaker.failed()
    assert probes == 20  # one per 30 s


def test_a_probe_that_says_nothing_about_the_provider_frees_the_next_one() -> None:
    clock = Clock()
    breaker = opened(clock)
    clock.now = 30
    breaker.probing()
    breaker.settled()  # rate limited, or an adapter bug
    assert breaker.claim_limit(5) == 0
    clock.now = 60
    assert breaker.claim_limit(5) == 1


def test_a_probe_that_reaches_the_provider_closes_it_and_says_since_when_it_was_open() -> None:
    clock = Clock()
    breaker = opened(clock)
    since = breaker.opened_at
    clock.now = 30
    breaker.probing()
    assert breaker.reached() == since
    assert not breaker.is_open and breaker.next_probe_at() is None
    assert breaker.claim_limit(200) == 200
