"""What every public page shares: the visitor's language, the templates, the brand's clock.

Pages are server-rendered Jinja2 (`web/templates/*.j2`, extending `base.html.j2`), autoescaped,
with no script and nothing loaded from elsewhere. Each page gets `words` (its language's words),
`clock` (a `PageClock`: times in the brand's zone, the zone named) and `status_words`.

    pages = Pages(settings)
    return pages.render("status.html.j2", visitor_locale(request, settings), components=rows)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from broadcaster.compose.render import status_words
from broadcaster.config import Settings
from broadcaster.control_characters import without_controls
from broadcaster.web.times import PageClock
from broadcaster.web.words import page_words

__all__ = ["STATIC_DIR", "Pages", "visitor_locale"]

STATIC_DIR = Path(__file__).parent / "static"  # the pages' stylesheet, /docs's start script: /static
_templates = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(["html", "j2"]),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def _tag(locale: str) -> str:
    return locale.replace("-", "_").lower()


def _language(locale: str) -> str:
    return _tag(locale).split("_")[0]


def _preferences(header: str) -> list[str]:
    """Accept-Language tags, most wanted first (by q, then order); q=0 ("not this one") dropped."""
    weighted: list[tuple[float, str]] = []
    for item in header.split(","):
        tag, _, params = item.strip().partition(";")
        quality = params.strip().removeprefix("q=")
        try:
            weight = float(quality) if quality else 1.0
        except ValueError:
            continue
        if tag.strip() and tag.strip() != "*" and weight > 0:
            weighted.append((weight, tag.strip()))
    return [tag for _weight, tag in sorted(weighted, key=lambda p: -p[0])]


def visitor_locale(request: Request, settings: Settings) -> str:
    """The brand locale closest to the visitor's Accept-Language, else the brand's default.

    Exact tags first ("en-GB" → `en_GB`), then the language: "en-US" reads a brand's `en_GB`
    (or its bare `en` when it has both), "fr-CA" its `fr`.
    """
    published = settings.brand.locales
    exact = {_tag(locale): locale for locale in published}
    by_language: dict[str, str] = {}
    for locale in published:
        if _tag(locale) == _language(locale) or _language(locale) not in by_language:
            by_language[_language(locale)] = locale
    for wanted in _preferences(request.headers.get("accept-language", "")):
        chosen = exact.get(_tag(wanted)) or by_language.get(_language(wanted))
        if chosen is not None:
            return chosen
    return settings.brand.default_locale


class Pages:
    """Renders the public pages' templates for one brand."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.base_url = settings.server.public_base_url.rstrip("/")

    def clock(self, locale: str) -> PageClock:
        """Times for a reader of `locale`, in the brand's time zone."""
        return PageClock(self.settings.brand.timezone, locale)

    def render(self, name: str, locale: str, *, status_code: int = 200, **context: Any) -> HTMLResponse:
        """The page `name` in `locale`, with the shared context (brand, words, clock, links)."""
        html = _templates.get_template(name).render(
            brand=self.settings.brand,
            locale=locale,
            lang=locale.replace("_", "-"),
            words=page_words(locale),
            clock=self.clock(locale),
            status_words=lambda status: status_words(status, locale),
            base_url=self.base_url,
            **context,
        )
        return HTMLResponse(  # a control character stored before publication refused them
            without_controls(html),
            status_code=status_code,
            headers={"Content-Language": locale.replace("_", "-")},
        )
