"""The public pages every message links to: the status page and one page per incident or maintenance.

Pages follow the visitor's language (Accept-Language, among the brand's locales) and show every
time in the brand's time zone, the zone named. An incident's page is the built-in blog: each
update's `blog` rendition, newest first, so what customers read there is exactly what was
published. A maintenance's page gives its window and the CM's text once, then each distinct
notice once (announced, rescheduled, started, extended…), newest first.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from markdown_it import MarkdownIt
from sqlalchemy import func, or_
from sqlmodel import col, select

from broadcaster.config import Settings
from broadcaster.db import SessionFactory
from broadcaster.message import RenderedMessage
from broadcaster.models import Component, Incident, IncidentUpdate, Rendition, utcnow
from broadcaster.publishing.drafting import duration_words
from broadcaster.web.ids import is_row_id
from broadcaster.web.notices import describe, distinct_notices, notice_facts
from broadcaster.web.pages import Pages, visitor_locale
from broadcaster.web.times import NBSP
from broadcaster.web.words import HISTORY_DAYS, component_words, page_words

__all__ = ["blog_renditions", "public_router", "visitor_locale"]

#: An incident or a maintenance in one of these statuses belongs to the history.
OVER = ("resolved", "completed", "cancelled")
_markdown = MarkdownIt("commonmark", {"html": False})


def public_router(settings: Settings, sessions: SessionFactory) -> APIRouter:
    """GET /status and GET /incidents/<id>."""
    router = APIRouter()
    pages = Pages(settings)

    @router.get("/status", response_class=HTMLResponse)
    async def status_page(request: Request) -> HTMLResponse:
        """Components, what is going on, what is planned, and the last days' history."""
        locale = visitor_locale(request, settings)
        since = utcnow() - timedelta(days=HISTORY_DAYS)
        async with sessions() as session:
            components = list(await session.exec(select(Component).order_by(col(Component.id))))
            incidents = list(
                await session.exec(
                    select(Incident)
                    .where(Incident.status != "draft")
                    .where(
                        or_(
                            col(Incident.status).not_in(OVER),
                            col(Incident.resolved_at) >= since,
                            col(Incident.created_at) >= since,
                        )
                    )
                    .order_by(col(Incident.id).desc())
                )
            )
            ongoing = [i for i in incidents if i.kind == "incident" and i.status not in OVER]
            updated = await _last_update_times(session, [i.id for i in ongoing if i.id])
        labels = {name: settings.component_label(name, locale) for name in settings.components}
        words = component_words(locale)
        statuses = {c.name: c.status for c in components}
        rows = [
            (
                labels[name],
                statuses.get(name, "operational"),
                words.get(statuses.get(name, "operational"), ""),
            )
            for name in settings.components
        ]
        maintenances = [i for i in incidents if i.kind == "maintenance"]
        return pages.render(
            "status.html.j2", locale,
            components=rows,
            ongoing=[(i, updated.get(i.id or 0, i.created_at)) for i in ongoing],
            running=[i for i in maintenances if i.status not in OVER and i.status != "scheduled"],
            upcoming=sorted((i for i in maintenances if i.status == "scheduled" and i.scheduled_start_at),
                            key=lambda i: i.scheduled_start_at or i.created_at),
            history=[i for i in incidents if i.kind == "incident" and i.status in OVER],
            past_maintenance=[i for i in maintenances if i.status in OVER],
        )  # fmt: skip

    @router.get("/incidents/{incident_id}", response_class=HTMLResponse)
    async def incident_page(incident_id: int, request: Request) -> HTMLResponse:
        """An incident's timeline as published on the blog; a maintenance's window and notices."""
        locale = visitor_locale(request, settings)
        async with sessions() as session:
            incident = await session.get(Incident, incident_id) if is_row_id(incident_id) else None
            if incident is None or incident.status == "draft":
                words = page_words(locale)
                return pages.render(
                    "not_found.html.j2", locale, status_code=404, title=words["not_found"], text=""
                )
            updates = list(
                await session.exec(
                    select(IncidentUpdate)
                    .where(IncidentUpdate.incident_id == incident_id)
                    .order_by(col(IncidentUpdate.id))
                )
            )
            ids = [u.id for u in updates if u.id]
            maintenance = incident.kind == "maintenance"
            facts = await notice_facts(session, ids) if maintenance else {}
            renditions = {} if maintenance else await blog_renditions(session, ids)
        labels = [settings.component_label(c, locale) for c in incident.components]
        if maintenance:
            first = updates[0].messages if updates else {}
            text = first.get(locale) or first.get(settings.brand.default_locale, "")
            return pages.render(
                "maintenance.html.j2", locale, incident=incident, labels=labels,
                message=_markdown.render(text),
                duration=duration_words(
                    incident.scheduled_start_at, incident.scheduled_end_at, locale
                ).replace(" ", NBSP),
                notices=distinct_notices(updates, facts),
                describe=lambda notice: describe(notice, pages.clock(locale), page_words(locale)),
            )  # fmt: skip
        entries = []
        for update in reversed(updates):  # newest first
            chosen = renditions.get((update.id, locale)) or renditions.get(
                (update.id, settings.brand.default_locale)
            )
            if chosen is not None:
                body = chosen.html
            else:  # the blog channel was off for this update: show the plain message
                message = update.messages.get(locale) or next(iter(update.messages.values()), "")
                body = _markdown.render(message)
            entries.append({"step": update, "html": body})
        return pages.render("incident.html.j2", locale, incident=incident, entries=entries, labels=labels)

    return router


async def _last_update_times(session: Any, incident_ids: list[int]) -> dict[int, datetime]:
    """When each incident was last updated (its newest published update)."""
    if not incident_ids:
        return {}
    rows = await session.exec(
        select(IncidentUpdate.incident_id, func.max(IncidentUpdate.created_at))
        .where(col(IncidentUpdate.incident_id).in_(incident_ids))
        .group_by(col(IncidentUpdate.incident_id))
    )
    return {incident_id: at for incident_id, at in rows}


async def blog_renditions(
    session: Any, update_ids: list[int]
) -> dict[tuple[int | None, str], RenderedMessage]:
    """The blog rendition of each update, by (update id, locale)."""
    if not update_ids:
        return {}
    rows = await session.exec(
        select(Rendition).where(col(Rendition.update_id).in_(update_ids)).where(Rendition.channel == "blog")
    )
    return {(r.update_id, r.locale): RenderedMessage.from_json(r.payload) for r in rows}
