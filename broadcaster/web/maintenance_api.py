"""`/api/v1/maintenance` and `/api/v1/incidents/{id}/postmortem`: what `broadcaster maintenance …` and
`incident postmortem` do, through the same functions (`incidents:read` to read, `incidents:write`
to change)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Literal

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from broadcaster.auth.roles import Permission
from broadcaster.compose.render import Composer
from broadcaster.config import Settings
from broadcaster.db import SessionFactory
from broadcaster.errors import BroadcasterError
from broadcaster.models import Incident, utcnow
from broadcaster.publishing.incident_reads import published_dict
from broadcaster.publishing.maintenance import (
    cancel_maintenance,
    complete_maintenance_now,
    reschedule_maintenance,
    schedule_maintenance,
)
from broadcaster.publishing.maintenance_notice import Unannounced
from broadcaster.publishing.maintenance_reads import list_maintenance, maintenance_dict, notice_ladder
from broadcaster.publishing.postmortem import (
    draft_postmortem,
    missing_sections,
    publish_postmortem,
    save_postmortem,
)
from broadcaster.publishing.update_writer import Published
from broadcaster.web.ids import RowId
from broadcaster.web.incidents_api import refusal
from broadcaster.web.staff_gate import StaffGate, needs, principal_of

__all__ = ["maintenance_api_router"]

JsonObject = dict[str, object]
Text = Annotated[str, Field(max_length=10_000)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ScheduleBody(_Body):
    title: Annotated[str, Field(min_length=1, max_length=200)]
    title_translations: dict[str, Annotated[str, Field(max_length=200)]] = Field(
        default_factory=dict, max_length=20
    )
    starts_at: AwareDatetime
    ends_at: AwareDatetime
    components: list[Annotated[str, Field(max_length=64)]] = Field(min_length=1, max_length=50)
    message: Annotated[str, Field(min_length=1, max_length=10_000)]
    translations: dict[str, Text] = Field(default_factory=dict, max_length=20)
    force: bool = False


class RescheduleBody(_Body):
    starts_at: AwareDatetime | None = None
    ends_at: AwareDatetime | None = None


class PostmortemDraftBody(_Body):
    locale: Literal["fr", "en"] | None = None
    cause: Text = ""
    changes: Text = ""


class PostmortemBody(_Body):
    markdown: Annotated[str, Field(min_length=1, max_length=100_000)]


class PublishPostmortemBody(_Body):
    force: bool = False  # publish again, or with placeholders left


def _window(incident: Incident, settings: Settings) -> JsonObject:
    notices = [
        {"at": at.isoformat(), "channels": channels} for at, channels in notice_ladder(settings, incident)
    ]
    return maintenance_dict(incident) | {"notices": notices}


def _outcome(outcome: Published | Unannounced, settings: Settings) -> JsonObject:
    if isinstance(outcome, Unannounced):  # nobody was told of it yet: the plan moved, nothing sent
        return _window(outcome.incident, settings) | {"told": False}
    return published_dict(outcome) | {"told": True}


def maintenance_api_router(
    settings: Settings, sessions: SessionFactory, gate: StaffGate, wake: Callable[[str], None] | None = None
) -> APIRouter:
    router = gate.router("/api/v1")
    read, write = needs(Permission.INCIDENTS_READ), needs(Permission.INCIDENTS_WRITE)
    composer = Composer(settings.templates_dir or None, default_locale=settings.brand.default_locale)

    def author(request: Request) -> str:
        return principal_of(request).user.display_name

    async def answered(
        request: Request, action: Callable[[], Awaitable[JsonObject]], status: int = 200
    ) -> Response:
        try:
            body = await action()
        except BroadcasterError as exc:
            return refusal(exc, request)
        deliveries = body.get("deliveries")
        if wake is not None and isinstance(deliveries, dict):
            for channel in deliveries:
                wake(str(channel))
        return JSONResponse(body, status_code=status)

    @router.get("/maintenance", **read)
    async def list_(include_over: bool = False) -> list[JsonObject]:
        """Planned and running windows, soonest first, each with its notice ladder."""
        return [_window(i, settings) for i in await list_maintenance(sessions, include_over=include_over)]

    @router.post("/maintenance", status_code=201, **write)
    async def schedule(body: ScheduleBody, request: Request) -> Response:
        """Plan a window; the scheduler sends its notices on the ladder shown in `notices`."""

        async def action() -> JsonObject:
            texts = {settings.brand.default_locale: body.message, **body.translations}
            async with sessions() as session:
                incident = await schedule_maintenance(
                    session, settings, title=body.title, starts_at=body.starts_at, ends_at=body.ends_at,
                    components=body.components, message=texts, author=author(request), now=utcnow(),
                    title_translations=body.title_translations, force=body.force,
                )  # fmt: skip
            return _window(incident, settings)

        return await answered(request, action, 201)

    @router.post("/maintenance/{incident_id}/reschedule", **write)
    async def reschedule(incident_id: RowId, body: RescheduleBody, request: Request) -> Response:
        """Move a planned window, or a running one's end; those told of it hear of the change."""

        async def action() -> JsonObject:
            async with sessions() as session:
                outcome = await reschedule_maintenance(
                    session, settings, incident_id, starts_at=body.starts_at, ends_at=body.ends_at,
                    now=utcnow(), author=author(request),
                )  # fmt: skip
            return _outcome(outcome, settings)

        return await answered(request, action)

    @router.post("/maintenance/{incident_id}/complete", **write)
    async def complete(incident_id: RowId, request: Request) -> Response:
        """End a running window now: components back, "completed" on every channel."""

        async def action() -> JsonObject:
            async with sessions() as session:
                published = await complete_maintenance_now(
                    session, settings, incident_id, now=utcnow(), author=author(request)
                )
            return published_dict(published)

        return await answered(request, action)

    @router.post("/maintenance/{incident_id}/cancel", **write)
    async def cancel(incident_id: RowId, request: Request) -> Response:
        """Call a window off; those told of it hear so."""

        async def action() -> JsonObject:
            async with sessions() as session:
                outcome = await cancel_maintenance(
                    session, settings, incident_id, now=utcnow(), author=author(request)
                )
            return _outcome(outcome, settings)

        return await answered(request, action)

    @router.post("/incidents/{incident_id}/postmortem/draft", **read)
    async def draft(incident_id: RowId, body: PostmortemDraftBody, request: Request) -> Response:
        """A report drafted from the timeline (nothing saved); `missing`: the sections still to write."""

        async def action() -> JsonObject:
            async with sessions() as session:
                markdown = await draft_postmortem(
                    session, settings, incident_id, locale=body.locale, cause=body.cause, changes=body.changes
                )
            return {"incident_id": incident_id, "markdown": markdown, "missing": missing_sections(markdown)}

        return await answered(request, action)

    @router.put("/incidents/{incident_id}/postmortem", **write)
    async def save(incident_id: RowId, body: PostmortemBody, request: Request) -> Response:
        """Save the (edited) report on the resolved incident."""

        async def action() -> JsonObject:
            async with sessions() as session:
                incident = await save_postmortem(session, incident_id, body.markdown)
            markdown = incident.postmortem or ""
            return {"incident_id": incident_id, "markdown": markdown, "missing": missing_sections(markdown)}

        return await answered(request, action)

    @router.post("/incidents/{incident_id}/postmortem/publish", status_code=201, **write)
    async def publish(incident_id: RowId, body: PublishPostmortemBody, request: Request) -> Response:
        """Post the saved report on the blog; refused while placeholders are left (unless `force`)."""

        async def action() -> JsonObject:
            async with sessions() as session:
                published = await publish_postmortem(
                    session, settings, composer, incident_id, author=author(request), force=body.force
                )
            return published_dict(published)

        return await answered(request, action, 201)

    return router
