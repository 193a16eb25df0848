"""`/maintenance`, for the shop's reverse proxy: 503 + Retry-After while a maintenance runs, else 200.

Search engines read a 503 with `Retry-After` as "come back later" and keep the shop's pages; a 200
or 404 maintenance page would replace or drop them. The page follows the visitor's language and
names the shop, the planned end (in the brand's time zone, named: readers may be elsewhere) and
the status page. `?component=checkout` answers 503 only when a running maintenance affects that
component (a proxy in front of the checkout alone).

    GET /maintenance  → 503, Retry-After: 5400, "… We will be back around 4:30 AM (Paris time)."
"""

from __future__ import annotations

import base64
import hashlib
import html
import math
from collections.abc import Callable
from datetime import datetime
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from sqlmodel import select

from broadcaster.compose.render import format_when
from broadcaster.config import Settings
from broadcaster.db import SessionFactory
from broadcaster.models import Incident, utcnow
from broadcaster.web.pages import visitor_locale
from broadcaster.web.times import PageClock

__all__ = ["OVERDUE_RETRY_SECONDS", "maintenance_router", "retry_after_seconds"]

#: Retry-After once the planned end has passed but the maintenance still runs (being extended).
OVERDUE_RETRY_SECONDS = 60

_WORDS = {
    "fr": {
        "title": "Maintenance en cours",
        "body": "{shop} est en maintenance. Nous serons de retour {until}. Merci de votre patience !",
        "soon": "{shop} est en maintenance. Nous serons de retour dans quelques instants.",
        "ok": "{shop} fonctionne normalement : aucune maintenance en cours.",
        "status": "État des services",
    },
    "en": {
        "title": "Maintenance in progress",
        "body": "{shop} is under maintenance. We will be back {until}. Thank you for your patience!",
        "soon": "{shop} is under maintenance. We will be back in a few moments.",
        "ok": "{shop} is working normally: no maintenance in progress.",
        "status": "Service status",
    },
}


def retry_after_seconds(ends_at: datetime | None, now: datetime) -> int:
    """Whole seconds until the planned end (at least 1); a short retry once the end has passed."""
    if ends_at is None or ends_at <= now:
        return OVERDUE_RETRY_SECONDS
    return max(1, math.ceil((ends_at - now).total_seconds()))


_STYLE = (
    "body{font-family:Arial,Helvetica,sans-serif;max-width:40em;margin:4em auto;padding:0 1em}"
    "time{white-space:nowrap}"
)
_STYLE_HASH = base64.b64encode(hashlib.sha256(_STYLE.encode()).digest()).decode()
#: The shop's proxy serves this page on the shop's own domain: its one style is inline, allowed by its hash.
_CSP = f"default-src 'none'; style-src 'sha256-{_STYLE_HASH}'; frame-ancestors 'none'; base-uri 'none'"


def _page(locale: str, title: str, paragraph: str, status_url: str, status_label: str) -> str:
    """The page; `paragraph` is HTML already escaped."""
    return (
        f'<!doctype html><html lang="{html.escape(locale)}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta name="robots" content="noindex"><title>{html.escape(title)}</title>'
        f"<style>{_STYLE}</style></head><body>"
        f"<h1>{html.escape(title)}</h1><p>{paragraph}</p>"
        f'<p><a href="{html.escape(status_url)}">{html.escape(status_label)}</a></p></body></html>'
    )


def _back_at(
    words: dict[str, str], shop: str, end: datetime, timezone: str, locale: str, now: datetime
) -> str:
    """The "back around 4:30 AM (Paris time)" sentence as HTML, the time one unbreakable `<time>`."""
    until = format_when(end, timezone=timezone, locale=locale, now=now, prep="around")
    zone = PageClock(timezone, locale).zone_name(end)
    stamp = end.astimezone(ZoneInfo(timezone)).isoformat(timespec="minutes")
    before, _, after = words["body"].partition("{until}")
    return (
        html.escape(before.format(shop=shop))
        + f'<time datetime="{stamp}">{html.escape(until)} ({html.escape(zone)})</time>'
        + html.escape(after.format(shop=shop))
    )


def maintenance_router(
    settings: Settings, sessions: SessionFactory, clock: Callable[[], datetime] = utcnow
) -> APIRouter:
    """GET and HEAD `/maintenance`; `clock` gives "now" (tests pass a fixed one)."""
    router = APIRouter()
    brand = settings.brand

    async def running(component: str | None) -> Incident | None:
        """The running maintenance that ends last (of those affecting `component`, if given)."""
        async with sessions() as session:
            rows = list(
                await session.exec(
                    select(Incident).where(Incident.kind == "maintenance", Incident.status == "in_progress")
                )
            )
        rows = [i for i in rows if component is None or component in i.components]
        if not rows:
            return None
        far = datetime.max.replace(tzinfo=utcnow().tzinfo)
        return max(rows, key=lambda i: i.scheduled_end_at or far)

    @router.get("/maintenance", response_class=HTMLResponse)
    @router.head("/maintenance", response_class=HTMLResponse, include_in_schema=False)  # one operation id
    async def maintenance(request: Request, component: str | None = None) -> HTMLResponse:
        """503 with Retry-After while a maintenance is in progress; 200 otherwise (never 404)."""
        locale = visitor_locale(request, settings)
        words = _WORDS.get(locale.split("_")[0], _WORDS["en"])
        now = clock()
        incident = await running(component)
        headers = {"Cache-Control": "no-store", "Content-Language": locale}
        headers["Content-Security-Policy"] = _CSP
        if incident is None:
            text = html.escape(words["ok"].format(shop=brand.name))
            page = _page(locale, brand.name, text, settings.status_url, words["status"])
            return HTMLResponse(page, status_code=200, headers=headers)
        end = incident.scheduled_end_at
        if end is not None and end > now:
            text = _back_at(words, brand.name, end, brand.timezone, locale, now)
        else:
            text = html.escape(words["soon"].format(shop=brand.name))
        headers["Retry-After"] = str(retry_after_seconds(end, now))
        page = _page(locale, words["title"], text, settings.status_url, words["status"])
        return HTMLResponse(page, status_code=503, headers=headers)

    return router
