"""Times as a person reads them (CLI tables and errors): in the brand's time zone, never UTC.

Scripts get ISO 8601 with its offset (`--json`); people get the brand's wall clock:

    local_time(update.created_at, "Europe/Paris")               # "2026-12-02 17:45" (a table naming the zone)
    local_time(now, "Europe/Paris", locale="fr")                # "2 déc. 17:45" (in a sentence)
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from babel import Locale, UnknownLocaleError
from babel.dates import format_skeleton

__all__ = ["local_time"]

# Babel's narrow no-break spaces become plain ones: a terminal or a log must not break "17 h" apart.
_SPACES = str.maketrans({"\u202f": " ", "\u00a0": " "})


def _babel_locale(locale: str) -> str:
    try:
        return str(Locale.parse(locale.replace("-", "_")))
    except (UnknownLocaleError, ValueError):
        return "en"


def local_time(
    value: datetime | None,
    timezone: str,
    *,
    locale: str | None = None,
    now: datetime | None = None,
    empty: str = "—",
) -> str:
    """`value` on the brand's clock: `2026-12-02 17:45`, or with `locale` the short "2 déc. 17:45".

    The short form names the year only when it is not the year of `now` (default: the current
    time); `None` gives `empty`.
    """
    if value is None:
        return empty
    zone = ZoneInfo(timezone)
    local = value.astimezone(zone)
    if locale is None:
        return local.strftime("%Y-%m-%d %H:%M")
    this_year = (now or datetime.now(UTC)).astimezone(zone).year
    skeleton = "MMMd" if local.year == this_year else "yMMMd"
    day = format_skeleton(skeleton, local, tzinfo=zone, locale=_babel_locale(locale))
    return f"{day} {local:%H:%M}".translate(_SPACES)
