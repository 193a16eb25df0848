"""`/feed.atom`: what the public pages show, as an Atom feed for readers and status aggregators.

An incident gives one entry per update (its blog rendition); a maintenance one entry per distinct
notice (announced, rescheduled, started…), categorised `maintenance`, never a repeat per rung of
the ladder. Entries of the last days, newest first, in the brand's default locale.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from fastapi import APIRouter
from fastapi.responses import Response
from feedgen.feed import FeedGenerator
from markdown_it import MarkdownIt
from markupsafe import Markup
from sqlmodel import col, select

from broadcaster.compose.render import status_words
from broadcaster.config import Settings
from broadcaster.control_characters import without_controls
from broadcaster.db import SessionFactory
from broadcaster.models import Incident, IncidentUpdate, utcnow
from broadcaster.web.notices import describe, distinct_notices, notice_facts
from broadcaster.web.public import blog_renditions
from broadcaster.web.times import PageClock
from broadcaster.web.words import HISTORY_DAYS, page_words

__all__ = ["feed_router"]

_markdown = MarkdownIt("commonmark", {"html": False})


@dataclass(frozen=True, slots=True)
class _Entry:
    at: datetime
    anchor: str  # the entry's id within its incident's page
    incident: Incident
    title: str
    html: str
    category: str  # incident | maintenance


def feed_router(settings: Settings, sessions: SessionFactory) -> APIRouter:
    """GET /feed.atom."""
    router = APIRouter()
    base_url = settings.server.public_base_url.rstrip("/")
    locale = settings.brand.default_locale
    words = page_words(locale)
    clock = PageClock(settings.brand.timezone, locale)

    @router.get("/feed.atom")
    async def atom_feed() -> Response:
        """Every update of an incident and every distinct maintenance notice of the last days."""
        since = utcnow() - timedelta(days=HISTORY_DAYS)
        async with sessions() as session:
            rows = list(
                await session.exec(
                    select(IncidentUpdate, Incident)
                    .join(Incident, col(Incident.id) == col(IncidentUpdate.incident_id))
                    .where(col(IncidentUpdate.created_at) >= since)
                    .order_by(col(IncidentUpdate.id))
                )
            )
            ids = [u.id for u, _ in rows if u.id]
            renditions = await blog_renditions(session, ids)
            facts = await notice_facts(session, [u.id for u, i in rows if u.id and i.kind == "maintenance"])
        entries: list[_Entry] = []
        maintenances: dict[int, list[IncidentUpdate]] = {}
        for update, incident in rows:
            if incident.kind == "maintenance":
                maintenances.setdefault(incident.id or 0, []).append(update)
                continue
            rendition = renditions.get((update.id, locale))
            html = rendition.html if rendition else _markdown.render(next(iter(update.messages.values()), ""))
            title = f"{incident.title_in(locale)} — {status_words(update.status, locale)}"
            entries.append(
                _Entry(update.created_at, f"update-{update.id}", incident, title, html, "incident")
            )
        incidents = {i.id: i for _, i in rows}
        for incident_id, updates in maintenances.items():
            incident = incidents[incident_id]
            for notice in distinct_notices(updates, facts):
                lines = describe(notice, clock, words)
                html = Markup("").join(
                    Markup("<p>{}{}{}</p>").format(label, words["colon"], value) for label, value in lines
                )
                title = f"{incident.title_in(locale)} — {words[notice.kind]}"
                anchor = f"notice-{notice.update_id}"
                entries.append(_Entry(notice.at, anchor, incident, title, str(html), "maintenance"))
        entries.sort(key=lambda e: e.at)

        feed = FeedGenerator()
        feed.id(f"{base_url}/feed.atom")
        feed.title(f"{settings.brand.name} — {words['back']}")
        feed.link(href=f"{base_url}/status", rel="alternate")
        feed.link(href=f"{base_url}/feed.atom", rel="self")
        feed.language(locale)
        feed.updated(entries[-1].at if entries else utcnow())
        for item in entries:  # feedgen prepends: oldest first gives newest on top
            entry = feed.add_entry()
            entry.id(f"{base_url}/incidents/{item.incident.id}#{item.anchor}")
            entry.title(without_controls(item.title))  # lxml refuses them: one would fail the feed
            entry.link(href=f"{base_url}/incidents/{item.incident.id}")
            entry.category(term=item.category)
            entry.updated(item.at)
            entry.published(item.at)
            entry.content(without_controls(item.html or item.title), type="html")
        return Response(feed.atom_str(pretty=True), media_type="application/atom+xml")

    return router
