"""`/console`: what needs the community manager now — open incidents and the promised next update
(red once overdue, with "post an update"), drafts waiting for a decision, deliveries in progress,
the inbox's counts."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from broadcaster.auth.roles import Permission
from broadcaster.db import SessionFactory
from broadcaster.inbox.inbox_reads import inbox_counts
from broadcaster.models import utcnow
from broadcaster.publishing.incident_reads import incident_timeline, list_incidents
from broadcaster.publishing.maintenance_reads import list_maintenance
from broadcaster.web.console.incident_page import progress
from broadcaster.web.console.shell import Console
from broadcaster.web.staff_gate import StaffGate, needs

__all__ = ["overview_router"]


def overview_router(console: Console, sessions: SessionFactory, gate: StaffGate) -> APIRouter:
    router = gate.router("/console")

    @router.get("", response_class=HTMLResponse, include_in_schema=False, **needs(Permission.INCIDENTS_READ))
    async def overview(request: Request) -> HTMLResponse:
        found = await list_incidents(sessions)
        drafts = [i for i in found if i.status == "draft"]  # nothing sent yet: no timeline to read
        timelines = [await incident_timeline(sessions, i.id) for i in found if i.id and i.status != "draft"]
        open_ = [t for t in timelines if t is not None]
        sending = []
        for timeline in open_:
            rows = progress(timeline)
            done, total = sum(r.done for r in rows), sum(r.total for r in rows)
            if done < total:
                sending.append((timeline.incident, done, total))
        maintenance = len(await list_maintenance(sessions))
        return console.render(
            request, "overview.html.j2", incidents=[t.incident for t in open_], drafts=drafts,
            sending=sending, inbox=await inbox_counts(sessions), now=utcnow(), maintenance=maintenance,
        )  # fmt: skip

    return router
