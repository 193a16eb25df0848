"""Every provider's "retry after" hint, read one defensive way.

Hints arrive as an HTTP `Retry-After` header (RFC 9110 §10.2.3: delay-seconds or an HTTP date),
a JSON number (Telegram `retry_after`, Meta's minutes), a `timedelta` (python-telegram-bot) or a
reset time minus now (X). A push endpoint is anyone's server, so the hint may be hostile:
`1e12`, `inf`, `NaN`, `-5`, a date in year 9999 or garbage. The result is always a finite
number of seconds in `[0, LONGEST_HINT_SECONDS]`; the dispatcher clamps it further
(`[dispatch] max_pause_seconds`).

>>> retry_after_seconds("120")
120.0
>>> retry_after_seconds("soon")
60.0
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

__all__ = ["DEFAULT_RETRY_AFTER", "LONGEST_HINT_SECONDS", "retry_after_seconds"]

DEFAULT_RETRY_AFTER = 60.0  # seconds, when a provider asks to slow down without a usable hint
LONGEST_HINT_SECONDS = 86_400.0  # no provider asks for more than a day (X's daily cap resets within one)
_DELAY_SECONDS = re.compile(r"\d{1,20}(?:\.\d{1,9})?")
_LONGEST_DATE = 64  # characters; an IMF-fixdate is 29


def retry_after_seconds(
    hint: str | float | timedelta | None, default: float = DEFAULT_RETRY_AFTER, *, now: datetime | None = None
) -> float:
    """Seconds to wait from a provider's hint; `default` when the hint is missing or unusable.

    A negative or non-numeric value is unusable; a date in the past means now (0); anything
    longer than `LONGEST_HINT_SECONDS` is read as that.
    """
    seconds = _seconds(hint, now or datetime.now(UTC))
    if seconds is None or math.isnan(seconds) or seconds < 0:
        seconds = default
    return min(max(seconds, 0.0), LONGEST_HINT_SECONDS)


def _seconds(hint: str | float | timedelta | None, now: datetime) -> float | None:
    if isinstance(hint, bool) or hint is None:
        return None
    if isinstance(hint, timedelta):
        return hint.total_seconds()
    if isinstance(hint, int | float):
        try:
            return float(hint)
        except OverflowError:  # an int past float range: longer than anything
            return math.inf
    if not isinstance(hint, str):
        return None
    text = hint.strip()
    if _DELAY_SECONDS.fullmatch(text):
        return float(text)
    if not text or len(text) > _LONGEST_DATE:
        return None
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - now).total_seconds())
