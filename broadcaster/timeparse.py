"""Parse the times a community manager types: "30m", "2h", "1h30m", "14:30" or "14h30", or ISO.

Every command option that promises something (an ETA, the next update, a maintenance window) goes
through `parse_future`: a time in the past is refused with one line naming the option, the text as
typed and the brand's clock — never a UTC time the user did not write.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from broadcaster.config import BrandSettings
from broadcaster.errors import InvalidInput
from broadcaster.localtime import local_time

__all__ = ["parse_future", "parse_when"]

_DURATION = re.compile(r"^\s*(?:(?P<h>\d+)\s*h)?\s*(?:(?P<m>\d+)\s*(?:m|min)?)?\s*$", re.IGNORECASE)
_CLOCK = re.compile(r"^\s*(?P<h>[01]?\d|2[0-3])\s*[:h]\s*(?P<m>[0-5]\d)\s*$", re.IGNORECASE)


def parse_when(value: str, *, now: datetime, timezone: str) -> datetime:
    """Return an aware UTC datetime for `value`, relative to `now` for durations.

    >>> parse_when("14:30", now=..., timezone="Europe/Paris")  # today 14:30 Paris, or tomorrow if past
    Raises ValueError with a message that says what formats are accepted.
    """
    text = value.strip()
    clock = _CLOCK.match(text)
    if clock:
        zone = ZoneInfo(timezone)
        local_now = now.astimezone(zone)
        candidate = local_now.replace(hour=int(clock["h"]), minute=int(clock["m"]), second=0, microsecond=0)
        if candidate <= local_now:
            candidate += timedelta(days=1)
        return candidate.astimezone(UTC)
    duration = _DURATION.match(text)
    if text and duration and (duration["h"] or duration["m"]):
        if text.isdigit():
            raise InvalidInput(f"{value!r}: add a unit, e.g. {value}m or {value}h")
        return now + timedelta(hours=int(duration["h"] or 0), minutes=int(duration["m"] or 0))
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(
            f"{value!r} is not a time: use a duration (30m, 2h, 1h30m), a clock time (14:30) "
            "or an ISO date-time (2026-11-22T14:30)"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=ZoneInfo(timezone))
    return parsed.astimezone(UTC)


def parse_future(option: str, value: str, *, now: datetime, brand: BrandSettings) -> datetime:
    """`value`, typed for `option` on the brand's clock, as aware UTC; refused unless after `now`.

    >>> parse_future("--eta", "2026-12-01T10:00", now=now, brand=settings.brand)
    InvalidInput: --eta 2026-12-01T10:00: this time is in the past (it is now 2 déc. 17:45, Europe/Paris)
    """
    try:
        when = parse_when(value, now=now, timezone=brand.timezone)
    except ValueError as exc:
        raise InvalidInput(f"{option}: {exc}") from None
    if when <= now:
        clock = local_time(now, brand.timezone, locale=brand.default_locale, now=now)
        raise InvalidInput(
            f"{option} {value.strip()}: this time is in the past (it is now {clock}, {brand.timezone})"
        )
    return when
