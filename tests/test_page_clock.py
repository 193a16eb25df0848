"""`PageClock`: how a time reads on a public page (see tests/test_page_times.py for the pages)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from broadcaster.web.times import NBSP, PageClock

AT = datetime(2026, 12, 2, 16, 11, tzinfo=UTC)  # 17:11 in Paris


def _readable(text: str) -> str:
    return text.replace(NBSP, " ").replace("\u202f", " ")


@pytest.mark.parametrize(
    ("locale", "expected"),
    [
        ("fr", "2 déc. 2026, 17:11 (heure de Paris)"),
        ("en", "Dec 2, 2026, 5:11 PM (Paris time)"),  # the locale's medium date, not "12/2/26"
        ("en_GB", "2 Dec 2026, 17:11 (Paris time)"),
        ("fr_CA", "2 déc. 2026, 17 h 11 (heure de Paris)"),
    ],
)
def test_a_page_time_is_the_medium_date_in_the_brand_zone_named(locale: str, expected: str) -> None:
    clock = PageClock("Europe/Paris", locale)
    text = clock.text(AT)
    assert _readable(text) == expected
    moment, zone = text.split(" (")  # a line may break before the zone, nowhere else
    assert " " not in moment and " " not in zone
    assert str(clock.html(AT)).startswith('<time datetime="2026-12-02T17:11+01:00">')


def test_zones_are_named_by_their_city_or_offset() -> None:
    assert _readable(PageClock("America/New_York", "en").text(AT)) == "Dec 2, 2026, 11:11 AM (New York time)"
    assert _readable(PageClock("Europe/Amsterdam", "fr").text(AT)).endswith("(heure d’Amsterdam)")
    assert _readable(PageClock("UTC", "fr").text(AT)).endswith("16:11 (UTC+00:00)")


def test_a_window_names_the_zone_once_and_the_day_once_when_it_is_the_same() -> None:
    clock = PageClock("Europe/Paris", "fr")
    same_day = clock.window_text(AT, AT + timedelta(hours=2))
    assert _readable(same_day) == "le 2 déc. 2026 de 17:11 à 19:11 (heure de Paris)"
    overnight = PageClock("Europe/Paris", "en").window_text(AT, AT + timedelta(hours=10))
    assert _readable(overnight) == "from Dec 2, 2026, 5:11 PM to Dec 3, 2026, 3:11 AM (Paris time)"
