"""Times as a person reads them on a public page: in the brand's zone, the zone named, never broken.

Readers of a status page may be anywhere, so every time says which clock it is on. The date is
the locale's medium date and the clock its short time (CLDR), so `en` reads US-style and a brand
publishing in `en_GB` gets the British order. Every space inside the date and time (and inside the
zone's name) is a no-break space, and the HTML form is a `<time datetime="…">` element the page
keeps on one line: a line may only break before the zone's name.

    clock = PageClock("Europe/Paris", "fr")
    clock.text(at)    → "2 déc. 2026, 17:11 (heure de Paris)"
    PageClock("Europe/Paris", "en").text(at)     → "Dec 2, 2026, 5:11 PM (Paris time)"
    PageClock("Europe/Paris", "en_GB").text(at)  → "2 Dec 2026, 17:11 (Paris time)"
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from babel import Locale, UnknownLocaleError
from babel.dates import format_date, format_time, get_timezone_gmt, get_timezone_location
from markupsafe import Markup

__all__ = ["NBSP", "PageClock", "babel_locale"]

NBSP = "\u00a0"
_VOWELS = tuple("AEIOUYÉÈÊÀÂÎÔÛaeiouyéèêàâîôû")
_WINDOW_WORDS = {
    "fr": {"same_day": "le {day} de {start} à {end}", "days": "du {start} au {end}"},
    "en": {"same_day": "{day}, {start} to {end}", "days": "from {start} to {end}"},
}


def babel_locale(locale: str) -> Locale:
    """The Babel locale for a configured locale ("en_GB", "fr-CA"); English if Babel does not know it."""
    try:
        return Locale.parse(locale.replace("-", "_"))
    except (UnknownLocaleError, ValueError):
        return Locale.parse("en")


def _unbroken(text: str) -> str:
    return text.replace(" ", NBSP)


class PageClock:
    """Formats aware datetimes for one page: one brand time zone, one reader locale."""

    def __init__(self, timezone: str, locale: str) -> None:
        self.zone = ZoneInfo(timezone)
        self.locale = babel_locale(locale)
        self.language = self.locale.language

    def zone_name(self, at: datetime) -> str:
        """The zone in words: "heure de Paris", "Paris time"; "UTC+00:00" for a zone without a city."""
        key = self.zone.key
        if "/" not in key or key.startswith("Etc/"):
            return get_timezone_gmt(at.astimezone(self.zone), locale=self.locale)
        city = get_timezone_location(self.zone, locale=self.locale, return_city=True)
        if self.language == "fr":
            return f"heure d’{city}" if city.startswith(_VOWELS) else f"heure de {city}"
        if self.language == "en":
            return f"{city} time"
        return get_timezone_location(self.zone, locale=self.locale)

    def _date(self, at: datetime) -> str:
        return _unbroken(format_date(at.astimezone(self.zone), "medium", locale=self.locale))

    def _clock(self, at: datetime) -> str:
        return _unbroken(format_time(at, "short", tzinfo=self.zone, locale=self.locale))

    def _bare(self, at: datetime) -> str:
        """Date and time without the zone, in the locale's own order ("{1}, {0}")."""
        pattern = str(self.locale.datetime_formats["medium"])
        return _unbroken(pattern.replace("{1}", self._date(at)).replace("{0}", self._clock(at)))

    def _zone_suffix(self, at: datetime) -> str:
        # A narrow screen may break before the zone's name, never inside the time or the name.
        return f" ({_unbroken(self.zone_name(at))})"

    def text(self, at: datetime) -> str:
        """The date, the time and the zone: "2 déc. 2026, 17:11 (heure de Paris)"."""
        return self._bare(at) + self._zone_suffix(at)

    def html(self, at: datetime) -> Markup:
        """`text` as a `<time datetime="ISO">` element (kept on one line by the page's CSS)."""
        return _time_tag(at.astimezone(self.zone), self._bare(at)) + self._zone_suffix(at)

    def _window_parts(
        self, start: datetime, end: datetime
    ) -> tuple[str, dict[str, tuple[datetime, str, bool]]]:
        """The phrase and its parts: name → (local datetime, text, date only)."""
        words = _WINDOW_WORDS.get(self.language, _WINDOW_WORDS["en"])
        local_start, local_end = start.astimezone(self.zone), end.astimezone(self.zone)
        if local_start.date() == local_end.date():
            return words["same_day"], {
                "day": (local_start, self._date(start), True),
                "start": (local_start, self._clock(start), False),
                "end": (local_end, self._clock(end), False),
            }
        return words["days"], {
            "start": (local_start, self._bare(start), False),
            "end": (local_end, self._bare(end), False),
        }

    def window_html(self, start: datetime, end: datetime) -> Markup:
        """A window with the zone named once: "le 3 déc. 2026 de 02:00 à 04:30 (heure de Paris)"."""
        pattern, parts = self._window_parts(start, end)
        tags = {name: _time_tag(local, text, date_only=day) for name, (local, text, day) in parts.items()}
        return Markup(pattern).format(**tags) + self._zone_suffix(start)

    def window_text(self, start: datetime, end: datetime) -> str:
        """`window_html` as plain text (feeds)."""
        pattern, parts = self._window_parts(start, end)
        return pattern.format(**{name: text for name, (_, text, _) in parts.items()}) + self._zone_suffix(
            start
        )


def _time_tag(local: datetime, text: str, *, date_only: bool = False) -> Markup:
    stamp = local.date().isoformat() if date_only else local.isoformat(timespec="minutes")
    return Markup('<time datetime="{}">{}</time>').format(stamp, text)
