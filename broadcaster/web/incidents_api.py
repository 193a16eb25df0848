"""`/api/v1/incidents` and `/api/v1/preview`: everything `broadcaster incident …` and `preview` do,
through the same functions. Reading needs `incidents:read`, publishing `incidents:write`.

Opening takes an `Idempotency-Key` header: the same key from the same caller opens one incident,
however often the request is retried (a phone on a train at 3 a.m.); a retry is answered with that
incident (`Idempotent-Replayed: true`), and the key reused for a different request is refused.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from typing import Annotated, Literal

from fastapi import APIRouter, Header, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from sqlalchemy.exc import IntegrityError

from broadcaster.auth.roles import Permission
from broadcaster.compose.render import Composer
from broadcaster.config import Settings
from broadcaster.db import SessionFactory
from broadcaster.delivery.audience import readers_by_locale
from broadcaster.errors import BroadcasterError, NotFound
from broadcaster.message import MessageKind
from broadcaster.publishing.drafting import fallbacks, preview
from broadcaster.publishing.incident_reads import (
    incident_dict,
    incident_timeline,
    list_incidents,
    published_dict,
    timeline_dict,
)
from broadcaster.publishing.incidents import (
    LintRefused,
    OpenKey,
    Published,
    UpdateDraft,
    discard_draft,
    open_incident,
    opened_with,
    post_update,
    publish_draft,
    resolve_incident,
)
from broadcaster.publishing.preview_document import finding_dict, preview_dict
from broadcaster.publishing.rehearsal import delete_rehearsal
from broadcaster.web.ids import RowId
from broadcaster.web.problems import problem
from broadcaster.web.staff_gate import StaffGate, needs, principal_of

__all__ = ["incidents_router", "refusal"]

JsonObject = dict[str, object]
Text = Annotated[str, Field(max_length=10_000)]
Translations = Annotated[dict[str, Text], Field(max_length=20)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DraftBody(_Body):
    """What a community manager writes for one update; `translations` by locale."""

    message: Text = ""
    translations: Translations = Field(default_factory=dict)
    eta_at: AwareDatetime | None = None
    next_update_at: AwareDatetime | None = None
    alternative: Text | None = None
    alternative_translations: Translations = Field(default_factory=dict)
    channels: list[Annotated[str, Field(max_length=32)]] = Field(default_factory=list, max_length=20)
    force: bool = False  # publish past the linter's errors…
    force_reason: Annotated[str, Field(max_length=300)] = ""  # …saying why (the audit log keeps it)


class OpenBody(DraftBody):
    title: Annotated[str, Field(min_length=1, max_length=200)]
    title_translations: Translations = Field(default_factory=dict)
    impact: Literal["none", "minor", "major", "critical"] = "major"
    components: list[Annotated[str, Field(max_length=64)]] = Field(min_length=1, max_length=50)
    status: Literal["investigating", "identified", "monitoring"] = "investigating"
    answer_conversations: bool = True
    holding_messages: bool = True


class PublishBody(DraftBody):
    title: Annotated[str | None, Field(max_length=200)] = None  # None: the draft's
    title_translations: Translations = Field(default_factory=dict)
    impact: Literal["none", "minor", "major", "critical"] | None = None
    components: list[Annotated[str, Field(max_length=64)]] | None = Field(default=None, max_length=50)
    status: Literal["investigating", "identified", "monitoring"] = "investigating"


class UpdateBody(DraftBody):
    status: Literal["investigating", "identified", "monitoring"] | None = None  # None: unchanged
    impact: Literal["none", "minor", "major", "critical"] | None = None
    components: list[Annotated[str, Field(max_length=64)]] | None = Field(default=None, max_length=50)


class ResolveBody(DraftBody):
    compensation: Text | None = None
    compensation_translations: Translations = Field(default_factory=dict)
    answer_conversations: bool = True


class PreviewBody(DraftBody):
    title: Annotated[str, Field(min_length=1, max_length=200)]
    title_translations: Translations = Field(default_factory=dict)
    impact: Literal["none", "minor", "major", "critical"] = "major"
    components: list[Annotated[str, Field(max_length=64)]] = Field(min_length=1, max_length=50)
    status: Literal["investigating", "identified", "monitoring", "resolved"] = "investigating"
    compensation: Text | None = None
    compensation_translations: Translations = Field(default_factory=dict)
    first: bool = True  # the incident's first update (its wording says so)


def _draft(body: DraftBody, status: str, author: str) -> UpdateDraft:
    compensation = getattr(body, "compensation", None)
    return UpdateDraft(
        status=status,
        message=body.message,
        translations=dict(body.translations),
        eta_at=body.eta_at,
        next_update_at=body.next_update_at,
        alternative=body.alternative,
        alternative_translations=dict(body.alternative_translations),
        compensation=compensation,
        compensation_translations=dict(getattr(body, "compensation_translations", {})),
        channels=tuple(body.channels),
        author=author,
        force_reason=body.force_reason.strip(),
    )


def refusal(exc: BroadcasterError, request: Request) -> JSONResponse:
    """A refused publication as a problem document; the linter's findings listed, each naming its rule."""
    if isinstance(exc, LintRefused):
        errors = [finding_dict(f) | {"field": "message"} for f in exc.findings if f.severity == "error"]
        detail = f'{exc}; or send "force": true with a "force_reason"'
        return problem(422, detail, request.url.path, errors=errors)
    return problem(404 if isinstance(exc, NotFound) else 422, str(exc), request.url.path)


def _fingerprint(body: BaseModel) -> str:
    return hashlib.sha256(json.dumps(body.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()


def incidents_router(
    settings: Settings, sessions: SessionFactory, gate: StaffGate, wake: Callable[[str], None] | None = None
) -> APIRouter:
    router = gate.router("/api/v1")
    read, write = needs(Permission.INCIDENTS_READ), needs(Permission.INCIDENTS_WRITE)
    composer = Composer(settings.templates_dir or None, default_locale=settings.brand.default_locale)

    def woken(published: Published) -> Published:
        if wake is not None:
            for channel, queued in published.deliveries.items():
                if queued:
                    wake(channel)
        return published

    async def publishing(
        request: Request, action: Callable[[], Awaitable[Published]], status_code: int = 201
    ) -> Response:
        try:
            published = woken(await action())
        except BroadcasterError as exc:
            return refusal(exc, request)
        return JSONResponse(published_dict(published), status_code=status_code)

    def author(request: Request) -> str:
        return principal_of(request).user.display_name

    @router.get("/incidents", **read)
    async def list_(
        status: Annotated[str | None, Query(max_length=32)] = None,
        kind: Literal["incident", "maintenance"] = "incident",
        include_over: bool = False,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
    ) -> list[JsonObject]:
        """Open incidents and drafts, newest first (`include_over`: resolved ones too; or one `status`)."""
        found = await list_incidents(
            sessions, include_over=include_over, kind=kind, status=status, limit=limit
        )
        return [incident_dict(i) for i in found]

    @router.get("/incidents/{incident_id}", **read)
    async def show(incident_id: RowId) -> JsonObject:
        """The timeline: every update with its deliveries per channel and state, and the customers'
        conversations linked to the incident."""
        timeline = await incident_timeline(sessions, incident_id)
        if timeline is None:
            raise HTTPException(status_code=404, detail=f"no incident #{incident_id}")
        return timeline_dict(timeline)

    @router.post("/incidents", status_code=201, **write)
    async def open_(
        body: OpenBody,
        request: Request,
        idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
    ) -> Response:
        """Open an incident and send its first update to every channel (`Idempotency-Key` recommended)."""
        principal = principal_of(request)
        key = None
        if idempotency_key is not None:
            key = OpenKey(principal.user.email, idempotency_key.strip(), _fingerprint(body))
            replay = await _replayed(key, request)
            if replay is not None:
                return replay
        draft = _draft(body, body.status, principal.user.display_name)

        async def action() -> Published:
            async with sessions() as session:
                return await open_incident(
                    session, settings, composer, title=body.title, impact=body.impact,
                    components=body.components, draft=draft, title_translations=body.title_translations,
                    force=body.force, answer_conversations=body.answer_conversations,
                    holding_messages=body.holding_messages, open_key=key,
                )  # fmt: skip

        try:
            return await publishing(request, action)
        except IntegrityError:  # the same key, sent twice at once: the other one opened it
            assert key is not None
            replay = await _replayed(key, request)
            if replay is None:
                raise
            return replay

    async def _replayed(key: OpenKey, request: Request) -> Response | None:
        async with sessions() as session:
            earlier = await opened_with(session, key.owner, key.key)
        if earlier is None:
            return None
        if earlier.fingerprint != key.fingerprint:
            return problem(
                422, "Idempotency-Key: this key was used for a different request; use a new key",
                request.url.path, errors=[{"field": "header.idempotency-key", "message": "reused"}],
            )  # fmt: skip
        timeline = await incident_timeline(sessions, earlier.incident_id)
        assert timeline is not None
        first = timeline.updates[0] if timeline.updates else None
        body: JsonObject = {
            "incident_id": earlier.incident_id, "update_id": first.id if first else None,
            "status": first.status if first else timeline.incident.status,
            "deliveries": timeline.deliveries, "findings": [], "fallbacks": [], "replayed": True,
        }  # fmt: skip
        return JSONResponse(body, status_code=201, headers={"Idempotent-Replayed": "true"})

    @router.post("/incidents/{incident_id}/updates", status_code=201, **write)
    async def update(incident_id: RowId, body: UpdateBody, request: Request) -> Response:
        """A follow-up: a message, or a new status, impact, components, ETA or next update."""
        draft = _draft(body, body.status or "", author(request))

        async def action() -> Published:
            async with sessions() as session:
                return await post_update(
                    session, settings, composer, incident_id, draft,
                    impact=body.impact, components=body.components, force=body.force,
                )  # fmt: skip

        return await publishing(request, action)

    @router.post("/incidents/{incident_id}/resolve", status_code=201, **write)
    async def resolve(incident_id: RowId, body: ResolveBody, request: Request) -> Response:
        """The resolution (thanks, compensation); customers who wrote about it are told."""
        draft = _draft(body, "resolved", author(request))

        async def action() -> Published:
            async with sessions() as session:
                return await resolve_incident(
                    session, settings, composer, incident_id, draft,
                    force=body.force, answer_conversations=body.answer_conversations,
                )  # fmt: skip

        return await publishing(request, action)

    @router.post("/incidents/{incident_id}/publish", status_code=201, **write)
    async def publish(incident_id: RowId, body: PublishBody, request: Request) -> Response:
        """Make a draft (the spike detector's, a monitor's) a public incident with its first update."""
        draft = _draft(body, body.status, author(request))

        async def action() -> Published:
            async with sessions() as session:
                return await publish_draft(
                    session, settings, composer, incident_id, title=body.title, impact=body.impact,
                    components=body.components, draft=draft, title_translations=body.title_translations,
                    force=body.force,
                )  # fmt: skip

        return await publishing(request, action)

    @router.delete("/incidents/{incident_id}/draft", **write)
    async def discard(incident_id: RowId, request: Request) -> Response:
        """Delete a draft nobody wants to publish; nothing was ever public."""
        try:
            async with sessions() as session:
                incident = await discard_draft(session, incident_id)
        except BroadcasterError as exc:
            return refusal(exc, request)
        return JSONResponse({"incident_id": incident.id, "title": incident.title, "discarded": True})

    @router.delete("/incidents/{incident_id}", **write)
    async def delete_(incident_id: RowId, request: Request) -> Response:
        """Delete a rehearsal and everything of it; refused once anything of it went out for real."""
        try:
            async with sessions() as session:
                gone = await delete_rehearsal(session, settings, incident_id)
        except BroadcasterError as exc:
            return refusal(exc, request)
        return JSONResponse(gone.as_dict() | {"deleted": True})

    @router.post("/preview", **read)
    async def preview_(body: PreviewBody, request: Request) -> Response:
        """Every channel × locale rendering and the linter's findings, as `broadcaster preview` shows."""
        kind: MessageKind = "resolved" if body.status == "resolved" else "update"
        draft = _draft(body, body.status, author(request))
        try:
            result = preview(
                settings, composer, title=body.title, impact=body.impact, components=body.components,
                draft=draft, kind=kind, is_first=body.first and kind == "update",
                title_translations=body.title_translations,
            )  # fmt: skip
        except BroadcasterError as exc:
            return refusal(exc, request)
        async with sessions() as session:
            readers = await readers_by_locale(session, settings, list(result.renders), body.components)
        return JSONResponse(preview_dict(result, fallbacks(result.untranslated, readers)))

    return router
