"""One defensive reading of every provider's retry hint: always finite, never negative, within a day."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from channels.base import RateLimited
from channels.retry_hint import DEFAULT_RETRY_AFTER, LONGEST_HINT_SECONDS, retry_after_seconds

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("hint", "seconds"),
    [
        ("120", 120.0),
        (" 7 ", 7.0),
        ("1.5", 1.5),
        ("Thu, 03 Dec 2026 12:02:00 GMT", 120.0),  # RFC 9110 IMF-fixdate
        ("Thursday, 03-Dec-26 12:00:30 GMT", 30.0),  # obsolete RFC 850 form, still valid
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),  # in the past: now
        (3, 3.0),
        (timedelta(seconds=42), 42.0),
    ],
)
def test_valid_hints_are_read(hint: str | float | timedelta, seconds: float) -> None:
    assert retry_after_seconds(hint, now=NOW) == seconds


@pytest.mark.parametrize(
    "hint",
    ["", "soon", "-5", "NaN", "nan", "-inf", "1e12", "0x10", "12 seconds", "Thu, 99 Foo 2026", "9" * 5000,
     None, True, math.nan, -1, -0.5, timedelta(seconds=-3)],
)  # fmt: skip
def test_unusable_hints_are_the_default(hint: str | float | timedelta | None) -> None:
    assert retry_after_seconds(hint, now=NOW) == DEFAULT_RETRY_AFTER


@pytest.mark.parametrize(
    "hint",
    ["1000000000000", "9" * 20, "Fri, 31 Dec 9999 23:59:59 GMT", math.inf, 1e308, 10**400,
     timedelta(days=999_999_999)],
)  # fmt: skip
def test_hints_longer_than_a_day_are_read_as_a_day(hint: str | float | timedelta) -> None:
    assert retry_after_seconds(hint, now=NOW) == LONGEST_HINT_SECONDS


@pytest.mark.parametrize("computed", [math.inf, math.nan, -10.0, 1e12])
def test_rate_limited_always_carries_a_finite_wait(computed: float) -> None:
    wait = RateLimited("slow down", computed).retry_after
    assert math.isfinite(wait) and 0 <= wait <= LONGEST_HINT_SECONDS
