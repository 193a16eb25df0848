"""`/console/maintenance`: planned and running windows with their notice ladder; the form to plan one
(shows what goes out when, on which channel, once checked), reschedule, complete now, cancel —
through `broadcaster.publishing.maintenance`, as `broadcaster maintenance` does."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from broadcaster.auth.roles import Permission
from broadcaster.config import Settings
from broadcaster.db import SessionFactory
from broadcaster.errors import BroadcasterError
from broadcaster.models import utcnow
from broadcaster.publishing.maintenance import (
    cancel_maintenance,
    complete_maintenance_now,
    reschedule_maintenance,
    schedule_maintenance,
)
from broadcaster.publishing.maintenance_reads import list_maintenance, notice_ladder
from broadcaster.timeparse import parse_future
from broadcaster.web.console.shell import Console
from broadcaster.web.ids import RowId
from broadcaster.web.staff_gate import StaffGate, needs, principal_of

__all__ = ["maintenance_pages_router"]

Text = Annotated[str, Form(max_length=10_000)]
When = Annotated[str, Form(max_length=40)]


def maintenance_pages_router(
    console: Console, settings: Settings, sessions: SessionFactory, gate: StaffGate
) -> APIRouter:
    router = gate.router("/console/maintenance")
    read, write = needs(Permission.INCIDENTS_READ), needs(Permission.INCIDENTS_WRITE)

    async def page(request: Request, *, status_code: int = 200, **context: object) -> HTMLResponse:
        windows = await list_maintenance(sessions)
        ladders = {w.id: notice_ladder(settings, w) for w in windows}
        return console.render(
            request, "maintenance.html.j2", status_code=status_code, windows=windows, ladders=ladders,
            components=list(settings.components), locales=settings.brand.locales, now=utcnow(),
            default_locale=settings.brand.default_locale,
            **({"error": "", "typed": {}} | context),
        )  # fmt: skip

    @router.get("", response_class=HTMLResponse, include_in_schema=False, **read)
    async def windows(request: Request) -> HTMLResponse:
        return await page(request)

    @router.post("", include_in_schema=False, **write)
    async def plan(request: Request) -> Response:
        form = await request.form()
        typed = {k: v for k, v in form.items() if isinstance(v, str) and k != "csrf_token"}
        default = settings.brand.default_locale
        messages = {loc: typed.get(f"message_{loc}", "").strip() for loc in settings.brand.locales}
        try:
            now = utcnow()
            starts = parse_future("starts", typed.get("starts", ""), now=now, brand=settings.brand)
            ends = parse_future("ends", typed.get("ends", ""), now=now, brand=settings.brand)
            async with sessions() as session:
                await schedule_maintenance(
                    session, settings, title=typed.get("title", "").strip()[:200],
                    starts_at=starts, ends_at=ends,
                    components=[c for c in form.getlist("components") if isinstance(c, str)],
                    message={loc: m for loc, m in messages.items() if m or loc == default},
                    author=principal_of(request).user.display_name, now=now,
                    force=typed.get("force") == "on",
                )  # fmt: skip
        except BroadcasterError as exc:
            return await page(request, status_code=422, error=str(exc), typed=typed)
        return RedirectResponse(f"{console.base_url}/console/maintenance", status_code=303)

    async def changed(request: Request, action: object) -> Response:
        try:
            await action  # type: ignore[misc]
        except BroadcasterError as exc:
            return await page(request, status_code=422, error=str(exc))
        return RedirectResponse(f"{console.base_url}/console/maintenance", status_code=303)

    @router.post("/{incident_id}/reschedule", include_in_schema=False, **write)
    async def reschedule(
        request: Request, incident_id: RowId, starts: When = "", ends: When = ""
    ) -> Response:
        now, brand = utcnow(), settings.brand
        try:
            new_start = parse_future("starts", starts, now=now, brand=brand) if starts.strip() else None
            new_end = parse_future("ends", ends, now=now, brand=brand) if ends.strip() else None
        except BroadcasterError as exc:
            return await page(request, status_code=422, error=str(exc))

        async def move() -> object:
            async with sessions() as session:
                return await reschedule_maintenance(
                    session, settings, incident_id, starts_at=new_start, ends_at=new_end, now=now,
                    author=principal_of(request).user.display_name,
                )  # fmt: skip

        return await changed(request, move())

    @router.post("/{incident_id}/complete", include_in_schema=False, **write)
    async def complete(request: Request, incident_id: RowId) -> Response:
        async def end() -> object:
            async with sessions() as session:
                return await complete_maintenance_now(
                    session,
                    settings,
                    incident_id,
                    now=utcnow(),
                    author=principal_of(request).user.display_name,
                )

        return await changed(request, end())

    @router.post("/{incident_id}/cancel", include_in_schema=False, **write)
    async def cancel(request: Request, incident_id: RowId) -> Response:
        async def drop() -> object:
            async with sessions() as session:
                return await cancel_maintenance(
                    session,
                    settings,
                    incident_id,
                    now=utcnow(),
                    author=principal_of(request).user.display_name,
                )

        return await changed(request, drop())

    return router
