"""The public pages every message links to: the status page, one page per incident, the Atom feed.

Pages follow the visitor's language (Accept-Language, among the brand's locales) and show times
in the brand's time zone. The incident page is the built-in blog: each update's `blog` rendition,
newest first, so what customers read there is exactly what was published.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import format_datetime
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, Response
from feedgen.feed import FeedGenerator
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markdown_it import MarkdownIt
from sqlmodel import col, select

from broadcaster.compose import status_words
from broadcaster.config import Settings
from broadcaster.db import SessionFactory
from broadcaster.message import RenderedMessage
from broadcaster.models import NOT_OPEN, Component, Incident, IncidentUpdate, Rendition, utcnow

HISTORY_DAYS = 30
COMPONENT_WORDS = {
    "fr": {"operational": "Opérationnel", "degraded": "Ralenti", "partial_outage": "Panne partielle",
           "major_outage": "Panne", "maintenance": "Maintenance"},
    "en": {"operational": "Operational", "degraded": "Degraded", "partial_outage": "Partial outage",
           "major_outage": "Outage", "maintenance": "Maintenance"},
}  # fmt: skip
PAGE_WORDS = {
    "fr": {"all_good": "Tous nos services fonctionnent normalement.", "incident": "Incident en cours",
           "components": "Services", "history": f"Incidents des {HISTORY_DAYS} derniers jours",
           "none": "Aucun incident.", "updated": "Mis à jour", "feed": "Flux Atom",
           "back": "État des services", "upcoming": "Maintenances prévues", "from": "du", "to": "au",
           "maintenance": "Maintenance en cours"},
    "en": {"all_good": "All our services are working normally.", "incident": "Ongoing incident",
           "components": "Services", "history": f"Incidents in the last {HISTORY_DAYS} days",
           "none": "No incidents.", "updated": "Updated", "feed": "Atom feed", "back": "Service status",
           "upcoming": "Scheduled maintenance", "from": "from", "to": "to",
           "maintenance": "Maintenance in progress"},
}  # fmt: skip

_templates = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(["html", "j2"]),
    trim_blocks=True,
    lstrip_blocks=True,
)
_markdown = MarkdownIt("commonmark", {"html": False})


def visitor_locale(request: Request, settings: Settings) -> str:
    """The visitor's preferred language (Accept-Language, by q) that the brand publishes in."""
    preferences: list[tuple[float, str]] = []
    for item in request.headers.get("accept-language", "").split(","):
        tag, _, params = item.strip().partition(";")
        quality = params.strip().removeprefix("q=")
        try:
            weight = float(quality) if quality else 1.0
        except ValueError:
            continue
        if tag:
            preferences.append((weight, tag.strip()))
    for _weight, tag in sorted(preferences, key=lambda p: -p[0]):
        language = tag.replace("-", "_")
        for candidate in (language, language.split("_")[0].lower()):
            if candidate in settings.brand.locales:
                return candidate
    return settings.brand.default_locale


def public_router(settings: Settings, sessions: SessionFactory) -> APIRouter:
    router = APIRouter()
    base_url = settings.server.public_base_url.rstrip("/")

    def when(value: Any, locale: str) -> str:
        return format_datetime(
            value, "short", tzinfo=ZoneInfo(settings.brand.timezone), locale=locale
        ).replace("\u202f", " ")

    def render(name: str, locale: str, **context: Any) -> HTMLResponse:
        words = PAGE_WORDS.get(locale, PAGE_WORDS["en"])
        html = _templates.get_template(name).render(
            brand=settings.brand, locale=locale, words=words, when=lambda v: when(v, locale),
            status_words=lambda s: status_words(s, locale), base_url=base_url, **context,
        )  # fmt: skip
        return HTMLResponse(html)

    @router.get("/status", response_class=HTMLResponse)
    async def status_page(request: Request) -> HTMLResponse:
        """Components, ongoing incidents and the last days' history."""
        locale = visitor_locale(request, settings)
        since = utcnow() - timedelta(days=HISTORY_DAYS)
        async with sessions() as session:
            components = list(await session.exec(select(Component).order_by(col(Component.id))))
            incidents = list(
                await session.exec(
                    select(Incident)
                    .where(col(Incident.created_at) >= since, Incident.status != "draft")
                    .order_by(col(Incident.id).desc())
                )
            )
        labels = {name: settings.component_label(name, locale) for name in settings.components}
        words = COMPONENT_WORDS.get(locale, COMPONENT_WORDS["en"])
        statuses = {c.name: c.status for c in components}
        rows = [
            (
                labels[name],
                statuses.get(name, "operational"),
                words.get(statuses.get(name, "operational"), ""),
            )
            for name in settings.components
        ]
        return render(
            "status.html.j2", locale,
            components=rows,
            ongoing=[i for i in incidents if i.status not in NOT_OPEN],
            upcoming=sorted((i for i in incidents if i.status == "scheduled" and i.scheduled_start_at),
                            key=lambda i: i.scheduled_start_at or i.created_at),
            history=[i for i in incidents if i.status in NOT_OPEN and i.status != "scheduled"],
            labels=labels,
        )  # fmt: skip

    @router.get("/incidents/{incident_id}", response_class=HTMLResponse)
    async def incident_page(incident_id: int, request: Request) -> HTMLResponse:
        """The incident's timeline: every update as it was published on the blog channel."""
        locale = visitor_locale(request, settings)
        async with sessions() as session:
            incident = await session.get(Incident, incident_id)
            if incident is None or incident.status == "draft":
                raise HTTPException(status_code=404, detail=f"no incident #{incident_id}")
            updates = list(
                await session.exec(
                    select(IncidentUpdate)
                    .where(IncidentUpdate.incident_id == incident_id)
                    .order_by(col(IncidentUpdate.id).desc())
                )
            )
            renditions = await _blog_renditions(session, [u.id for u in updates if u.id])
        entries = []
        for update in updates:
            chosen = renditions.get((update.id, locale)) or renditions.get(
                (update.id, settings.brand.default_locale)
            )
            if chosen is not None:
                body = chosen.html
            else:  # the blog channel was off for this update: show the plain message
                text = update.messages.get(locale) or next(iter(update.messages.values()), "")
                body = _markdown.render(text)
            entries.append({"step": update, "html": body})
        labels = [settings.component_label(c, locale) for c in incident.components]
        return render("incident.html.j2", locale, incident=incident, entries=entries, labels=labels)

    @router.get("/feed.atom")
    async def atom_feed() -> Response:
        """Every update of the last days, newest first, for feed readers and status aggregators."""
        since = utcnow() - timedelta(days=HISTORY_DAYS)
        locale = settings.brand.default_locale
        async with sessions() as session:
            rows = list(
                await session.exec(
                    select(IncidentUpdate, Incident)
                    .join(Incident, col(Incident.id) == col(IncidentUpdate.incident_id))
                    .where(col(IncidentUpdate.created_at) >= since)
                    .order_by(col(IncidentUpdate.id))
                )
            )
            renditions = await _blog_renditions(session, [u.id for u, _ in rows if u.id])
        feed = FeedGenerator()
        feed.id(f"{base_url}/feed.atom")
        feed.title(f"{settings.brand.name} — {PAGE_WORDS.get(locale, PAGE_WORDS['en'])['back']}")
        feed.link(href=f"{base_url}/status", rel="alternate")
        feed.link(href=f"{base_url}/feed.atom", rel="self")
        feed.language(locale)
        feed.updated(rows[-1][0].created_at if rows else utcnow())
        for update, incident in rows:  # feedgen prepends: oldest first gives newest on top
            entry = feed.add_entry()
            entry.id(f"{base_url}/incidents/{incident.id}#update-{update.id}")
            entry.title(f"{incident.title} — {status_words(update.status, locale)}")
            entry.link(href=f"{base_url}/incidents/{incident.id}")
            entry.updated(update.created_at)
            entry.published(update.created_at)
            rendition = renditions.get((update.id, locale))
            html = rendition.html if rendition else _markdown.render(next(iter(update.messages.values()), ""))
            entry.content(html, type="html")
        return Response(feed.atom_str(pretty=True), media_type="application/atom+xml")

    return router


async def _blog_renditions(
    session: Any, update_ids: list[int]
) -> dict[tuple[int | None, str], RenderedMessage]:
    if not update_ids:
        return {}
    rows = await session.exec(
        select(Rendition).where(col(Rendition.update_id).in_(update_ids)).where(Rendition.channel == "blog")
    )
    return {(r.update_id, r.locale): RenderedMessage.from_json(r.payload) for r in rows}
