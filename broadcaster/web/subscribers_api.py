"""`/api/v1/subscribers`: what `broadcaster subscribers …` does — search and page, add one, import a
CSV all-or-nothing with every bad line named, export, and the GDPR erase of one person. Reading needs
`subscribers:read`, changing `subscribers:write`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from broadcaster.auth.roles import Permission
from broadcaster.config import Settings
from broadcaster.db import SessionFactory
from broadcaster.delivery.erasure import erase_subscriber
from broadcaster.delivery.subscriber_reads import export_csv, find_subscriptions, subscription_dict
from broadcaster.delivery.subscribers import ImportError_, NewSubscriber, import_subscribers, parse_csv
from broadcaster.errors import BroadcasterError
from broadcaster.web.ids import RowId
from broadcaster.web.incidents_api import refusal
from broadcaster.web.problems import problem
from broadcaster.web.staff_gate import StaffGate, needs

__all__ = ["MAX_CSV_BYTES", "subscribers_router"]

MAX_CSV_BYTES = 50 * 1024 * 1024  # about 500,000 subscribers: more is an upload gone wrong
JsonObject = dict[str, object]


class NewSubscriberBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    addresses: dict[Annotated[str, Field(max_length=32)], Annotated[str, Field(max_length=1024)]] = Field(
        min_length=1, max_length=10
    )  # channel → address: {"email": "…", "telegram": "…"}
    locale: Annotated[str, Field(max_length=16)] = ""
    components: list[Annotated[str, Field(max_length=64)]] = Field(default_factory=list, max_length=50)
    name: Annotated[str, Field(max_length=200)] = ""


def _import_refused(exc: ImportError_, request: Request) -> Response:
    errors = [{"field": p.partition(":")[0], "message": p.partition(":")[2].strip()} for p in exc.problems]
    detail = f"{len(exc.problems)} bad line(s), nothing imported: " + "; ".join(exc.problems[:5])
    return problem(422, detail, request.url.path, errors=errors)


def subscribers_router(settings: Settings, sessions: SessionFactory, gate: StaffGate) -> APIRouter:
    router = gate.router("/api/v1/subscribers")
    read, write = needs(Permission.SUBSCRIBERS_READ), needs(Permission.SUBSCRIBERS_WRITE)

    @router.get("", **read)
    async def search(
        q: Annotated[str, Query(max_length=200)] = "",
        channel: Annotated[str | None, Query(max_length=32)] = None,
        active: bool | None = None,
        after: Annotated[int, Query(ge=0)] = 0,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
    ) -> JsonObject:
        """Subscriptions matching `q` (part of an address or a name); the next page: `after=<next>`."""
        rows = await find_subscriptions(
            sessions, search=q, channel=channel, active=active, after_id=after, limit=limit
        )
        found = [subscription_dict(s, p) for s, p in rows]
        return {"subscriptions": found, "next": found[-1]["id"] if len(found) == limit else None}

    @router.post("", status_code=201, **write)
    async def add(body: NewSubscriberBody, request: Request) -> Response:
        entry = NewSubscriber(
            addresses=body.addresses, locale=body.locale or settings.brand.default_locale,
            components=tuple(body.components), name=body.name, line=1,
        )  # fmt: skip
        try:
            async with sessions() as session:
                report = await import_subscribers(session, settings, [entry])
        except ImportError_ as exc:
            return problem(422, "; ".join(p.removeprefix("line 1: ") for p in exc.problems), request.url.path)
        except BroadcasterError as exc:
            return refusal(exc, request)
        return JSONResponse(
            {"subscriptions": report.subscriptions, "already_subscribed": report.already_subscribed},
            status_code=201,
        )

    @router.post("/import", **write)
    async def import_(request: Request) -> Response:
        """A CSV body (`text/csv`, the columns of `subscribers import`): every line is checked first;
        one bad line and nothing is written, each bad one named (`line 7: …`)."""
        if int(request.headers.get("content-length") or 0) > MAX_CSV_BYTES:
            return problem(413, f"body: more than {MAX_CSV_BYTES // 1024 // 1024} MB", request.url.path)
        raw = bytearray()
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > MAX_CSV_BYTES:
                return problem(413, f"body: more than {MAX_CSV_BYTES // 1024 // 1024} MB", request.url.path)
        try:
            text = bytes(raw).decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            return problem(422, f"body: not UTF-8 (byte {exc.start})", request.url.path)
        entries, problems = parse_csv(text)
        if problems:
            return _import_refused(ImportError_(problems), request)
        try:
            async with sessions() as session:
                report = await import_subscribers(session, settings, entries)
        except ImportError_ as exc:
            return _import_refused(exc, request)
        return JSONResponse({
            "subscribers": report.subscribers, "subscriptions": report.subscriptions,
            "already_subscribed": report.already_subscribed,
        })  # fmt: skip

    @router.get("/export.csv", **read)
    async def export() -> Response:
        """Every active subscriber as the CSV the import reads back."""
        return Response(
            await export_csv(sessions), media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="subscribers.csv"'},
        )  # fmt: skip

    @router.delete("/{subscriber_id}", **write)
    async def erase(subscriber_id: RowId, request: Request) -> Response:
        """Erase a person and everything we hold on them (GDPR); it cannot be undone."""
        try:
            erased = await erase_subscriber(sessions, subscriber_id)
        except BroadcasterError as exc:
            return refusal(exc, request)
        return JSONResponse(erased.as_dict())

    return router
