"""`GET /api/v1/events`: server-sent events of what changed, for the console's live pages.

    event: delivery
    id: 812.4410
    data: {"update_id": 31, "incident_id": 12, "channels": {"email": {"sent": 2314}}, "done": true, …}

Events: `incident` (published, updated, resolved, drafted…), `conversation` (replied, assigned,
labelled, closed), `message` (a new message in a conversation), `delivery` (an update's progress, until
`done`), `subscribers`, `account` — each only to a caller whose role reads it. Reconnecting with
`Last-Event-ID` resumes where the stream stopped.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from sse_starlette import EventSourceResponse, ServerSentEvent

from broadcaster.auth.roles import Permission
from broadcaster.db import SessionFactory
from broadcaster.web.events_feed import Cursor, EventFeed
from broadcaster.web.staff_gate import StaffGate, needs, principal_of

__all__ = ["POLL_SECONDS", "events_router"]

POLL_SECONDS = 0.5  # how often a stream looks at the database: the console's "live" is this fresh


def events_router(sessions: SessionFactory, gate: StaffGate, poll_seconds: float = POLL_SECONDS) -> APIRouter:
    router = gate.router("/api/v1")

    @router.get("/events", response_class=EventSourceResponse, **needs(Permission.INCIDENTS_READ))
    async def events(request: Request) -> EventSourceResponse:
        """A stream of what changed, as server-sent events; `Last-Event-ID` resumes."""
        feed = EventFeed(sessions, principal_of(request).permissions)
        resumed = Cursor.parse(request.headers.get("last-event-id", ""))
        if resumed is None:
            await feed.start_now()
        else:
            feed.cursor = resumed

        async def stream() -> AsyncIterator[ServerSentEvent]:
            yield ServerSentEvent(comment="listening")  # the client knows it is connected
            while not await request.is_disconnected():
                for change in await feed.changes():
                    yield ServerSentEvent(
                        data=json.dumps(change.data), event=change.event, id=str(feed.cursor)
                    )
                await asyncio.sleep(poll_seconds)

        return EventSourceResponse(stream(), ping=15, headers={"Cache-Control": "no-store"})

    return router
