"""`/api/v1/incidents/{id}/deliveries`, `/api/v1/updates/{id}/requeue` and `/api/v1/captured`: what
`broadcaster deliveries` and `captured` show and do. Addresses and chat ids are shown only to roles
that read subscribers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from broadcaster.auth.roles import Permission
from broadcaster.config import Settings
from broadcaster.db import SessionFactory
from broadcaster.delivery import channel_pause
from broadcaster.delivery.captured import find_captured
from broadcaster.delivery.delivery_reads import delivery_dict, incident_deliveries
from broadcaster.delivery.requeue import requeue
from broadcaster.errors import BroadcasterError
from broadcaster.web.ids import RowId, RowIdFilter
from broadcaster.web.incidents_api import refusal
from broadcaster.web.staff_gate import StaffGate, needs, principal_of

__all__ = ["deliveries_router"]

JsonObject = dict[str, object]
Requeueable = Literal["dead", "failed"]
Status = Literal["pending", "sending", "sent", "failed", "dead", "captured"]


class RequeueBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    statuses: list[Requeueable] = Field(default_factory=lambda: list[Requeueable](["dead"]), min_length=1)
    channels: list[Annotated[str, Field(max_length=32)]] = Field(default_factory=list, max_length=20)
    dry_run: bool = False


def deliveries_router(
    settings: Settings, sessions: SessionFactory, gate: StaffGate, wake: Callable[[str], None] | None = None
) -> APIRouter:
    router = gate.router("/api/v1")
    read, write = needs(Permission.INCIDENTS_READ), needs(Permission.INCIDENTS_WRITE)

    def sees_addresses(request: Request) -> bool:
        return Permission.SUBSCRIBERS_READ in principal_of(request).permissions

    @router.get("/incidents/{incident_id}/deliveries", **read)
    async def deliveries(
        incident_id: RowId,
        request: Request,
        update: RowIdFilter = None,
        status: Annotated[list[Status] | None, Query()] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    ) -> JsonObject:
        """Counts by channel and state (of one `update`), paused channels, and the rows of `status`
        (default: those that failed or wait for a retry, with the reason)."""
        report = await incident_deliveries(
            sessions, incident_id, update_id=update, statuses=status or (), limit=limit
        )
        if report is None:
            raise HTTPException(status_code=404, detail=f"no incident #{incident_id}")
        zone, addresses = settings.brand.timezone, sees_addresses(request)
        return {
            "incident_id": incident_id,
            "by_channel": report.counts,
            "paused": {
                c: channel_pause.describe(p, zone) for c, p in report.pauses.items() if c in report.counts
            },
            "rows": [delivery_dict(d, with_target=addresses) for d in report.rows],
        }

    @router.post("/updates/{update_id}/requeue", **write)
    async def requeue_(update_id: RowId, body: RequeueBody, request: Request) -> Response:
        """Put an update's dead (or failed) rows back in the queue; what was sent is never resent."""
        try:
            async with sessions() as session:
                result = await requeue(
                    session, update_id, statuses=body.statuses, channels=body.channels, dry_run=body.dry_run
                )
        except BroadcasterError as exc:
            return refusal(exc, request)
        if wake is not None and not result.dry_run:
            for channel in result.requeued:
                wake(channel)
        return JSONResponse(asdict(result))

    @router.get("/captured", **read)
    async def captured(
        request: Request,
        incident: RowIdFilter = None,
        channel: Annotated[str | None, Query(max_length=32)] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    ) -> Response:
        """What capture-mode channels would have sent (rehearsals), newest incident first."""
        try:
            async with sessions() as session:
                entries = await find_captured(session, incident_id=incident, channel=channel)
        except BroadcasterError as exc:
            return refusal(exc, request)
        shown = [entry.as_dict() for entry in entries[:limit]]
        if not sees_addresses(request):  # what would have reached real subscribers: their addresses
            shown = [{k: v for k, v in entry.items() if k != "recipient"} for entry in shown]
        return JSONResponse(shown)

    return router
