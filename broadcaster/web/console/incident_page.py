"""`/console/incidents/{id}`: the timeline, a progress bar per channel that moves live until every
message is out (our script listens to `/api/v1/events`), failures with their reasons, the customers
who wrote about it; and the forms to post an update or resolve, through `post_update` and
`resolve_incident` as the CLI does."""

from __future__ import annotations

from dataclasses import dataclass, replace

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from broadcaster.auth.roles import Permission
from broadcaster.compose.render import Composer
from broadcaster.config import Settings
from broadcaster.db import SessionFactory
from broadcaster.delivery import outbox
from broadcaster.errors import BroadcasterError
from broadcaster.publishing.incident_reads import IncidentTimeline, incident_timeline
from broadcaster.publishing.incidents import LintRefused, post_update, resolve_incident
from broadcaster.web.console.composer import Composition
from broadcaster.web.console.shell import Console
from broadcaster.web.ids import RowId
from broadcaster.web.staff_gate import StaffGate, needs, principal_of

__all__ = ["ChannelProgress", "incident_page_router", "progress"]


@dataclass(frozen=True, slots=True)
class ChannelProgress:
    channel: str
    done: int  # out, or refused for good: never tried again
    total: int
    failed: int


def progress(timeline: IncidentTimeline) -> list[ChannelProgress]:
    """Per channel: messages out (or refused for good), all of them, and the failed ones."""
    return [
        ChannelProgress(
            channel,
            sum(n for s, n in statuses.items() if s in outbox.FINAL),
            sum(statuses.values()),
            statuses.get(outbox.FAILED, 0) + statuses.get(outbox.DEAD, 0),
        )
        for channel, statuses in sorted(timeline.deliveries.items())
    ]


def incident_page_router(
    console: Console, settings: Settings, sessions: SessionFactory, gate: StaffGate
) -> APIRouter:
    router = gate.router("/console/incidents")
    composer = Composer(settings.templates_dir or None, default_locale=settings.brand.default_locale)

    async def page(
        request: Request, incident_id: int, *, status_code: int = 200, **context: object
    ) -> HTMLResponse:
        timeline = await incident_timeline(sessions, incident_id)
        if timeline is None:
            raise HTTPException(status_code=404, detail=f"no incident #{incident_id}")
        return console.render(
            request, "incident.html.j2", status_code=status_code, timeline=timeline,
            incident=timeline.incident, progress=progress(timeline), locales=settings.brand.locales,
            default_locale=settings.brand.default_locale, events=f"{console.base_url}/api/v1/events",
            **({"findings": [], "error": "", "refused": False, "form": Composition()} | context),
        )  # fmt: skip

    @router.get(
        "/{incident_id}",
        response_class=HTMLResponse,
        include_in_schema=False,
        **needs(Permission.INCIDENTS_READ),
    )
    async def show(request: Request, incident_id: RowId) -> HTMLResponse:
        return await page(request, incident_id)

    @router.post("/{incident_id}", include_in_schema=False, **needs(Permission.INCIDENTS_WRITE))
    async def follow_up(request: Request, incident_id: RowId) -> Response:
        """The update or the resolution, as the form's `step` says."""
        submitted = await request.form()
        form = Composition.read(submitted, settings)
        resolving = submitted.get("step") == "resolve"
        form.status = "resolved" if resolving else (form.status if submitted.get("status") else "")
        author = principal_of(request).user.display_name
        compensation = submitted.get("compensation")
        try:
            draft = form.draft(settings, author)
            async with sessions() as session:
                if resolving:
                    offered = compensation.strip()[:2000] if isinstance(compensation, str) else ""
                    draft = replace(draft, compensation=offered or None)
                    await resolve_incident(session, settings, composer, incident_id, draft, force=form.force)
                else:
                    await post_update(session, settings, composer, incident_id, draft, force=form.force)
        except LintRefused as exc:
            return await page(
                request, incident_id, status_code=422, findings=exc.findings, refused=True, form=form
            )
        except BroadcasterError as exc:
            return await page(request, incident_id, status_code=422, error=str(exc), form=form)
        return RedirectResponse(f"{console.base_url}/console/incidents/{incident_id}", status_code=303)

    return router
