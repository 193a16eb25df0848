"""`/console/inbox`: the shared inbox. The list with filters (status, incident, assignee, label),
new messages arriving without a reload (our script listens to `/api/v1/events`); a conversation's
thread with the customer's channel and identity, the bot's answers marked, unverified senders
flagged; reply (own words or a canned reply, previewed with its variables filled), assign, label,
close and reopen — through `broadcaster.inbox.actions`, as `broadcaster inbox` does."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from broadcaster.auth.roles import Permission
from broadcaster.config import Settings
from broadcaster.db import SessionFactory
from broadcaster.errors import BroadcasterError
from broadcaster.inbox import actions
from broadcaster.inbox.filing import conversation_with_messages
from broadcaster.models import UNVERIFIED
from broadcaster.web.console.shell import Console
from broadcaster.web.ids import RowId
from broadcaster.web.staff_gate import StaffGate, needs, principal_of

__all__ = ["inbox_pages_router"]

Short = Annotated[str, Form(max_length=120)]


def inbox_pages_router(
    console: Console, settings: Settings, sessions: SessionFactory, gate: StaffGate
) -> APIRouter:
    router = gate.router("/console/inbox")
    read, write = needs(Permission.INBOX_READ), needs(Permission.INBOX_WRITE)

    @router.get("", response_class=HTMLResponse, include_in_schema=False, **read)
    async def inbox(
        request: Request,
        status: Annotated[str, Query(max_length=16)] = "open",
        assignee: Annotated[str | None, Query(max_length=120)] = None,
        label: Annotated[str | None, Query(max_length=32)] = None,
        incident: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
    ) -> HTMLResponse:
        try:
            rows = await actions.find_conversations(
                sessions, status=status or None, incident_id=incident, assignee=assignee or None,
                label=label or None, limit=200,
            )  # fmt: skip
        except BroadcasterError as exc:
            return console.render(
                request, "inbox.html.j2", status_code=422, rows=[], error=str(exc), filters={}
            )
        filters = {
            "status": status,
            "assignee": assignee or "",
            "label": label or "",
            "incident": incident or "",
        }
        return console.render(
            request, "inbox.html.j2", rows=rows, error="", filters=filters, unverified=UNVERIFIED
        )

    async def thread(
        request: Request, conversation_id: int, *, status_code: int = 200, error: str = ""
    ) -> HTMLResponse:
        found = await conversation_with_messages(sessions, conversation_id)
        if found is None:
            raise HTTPException(status_code=404, detail=f"no conversation #{conversation_id}")
        conversation, messages = found
        canned = await actions.canned_previews(
            sessions, settings, conversation.locale or settings.brand.default_locale
        )
        return console.render(
            request, "conversation.html.j2", status_code=status_code, conversation=conversation,
            messages=messages, canned=canned, error=error, unverified=UNVERIFIED,
        )  # fmt: skip

    @router.get("/{conversation_id}", response_class=HTMLResponse, include_in_schema=False, **read)
    async def show(request: Request, conversation_id: RowId) -> HTMLResponse:
        return await thread(request, conversation_id)

    async def done(request: Request, conversation_id: int, action: object) -> Response:
        try:
            await action  # type: ignore[misc]
        except BroadcasterError as exc:
            return await thread(request, conversation_id, status_code=422, error=str(exc))
        return RedirectResponse(f"{console.base_url}/console/inbox/{conversation_id}", status_code=303)

    @router.post("/{conversation_id}/reply", include_in_schema=False, **write)
    async def reply(
        request: Request,
        conversation_id: RowId,
        text: Annotated[str, Form(max_length=actions.MAX_TEXT)] = "",
        canned: Annotated[str, Form(max_length=64)] = "",
    ) -> Response:
        """The agent's own words, or a canned reply by its name."""
        author = principal_of(request).user.display_name
        sending = actions.reply(
            sessions,
            settings,
            conversation_id,
            text=None if canned else text,
            canned=canned or None,
            author=author,
        )
        return await done(request, conversation_id, sending)

    @router.post("/{conversation_id}/assign", include_in_schema=False, **write)
    async def assign(request: Request, conversation_id: RowId, assignee: Short = "") -> Response:
        return await done(request, conversation_id, actions.assign(sessions, conversation_id, assignee))

    @router.post("/{conversation_id}/labels", include_in_schema=False, **write)
    async def labels(
        request: Request, conversation_id: RowId, add: Short = "", remove: Short = ""
    ) -> Response:
        adding = [x for x in add.replace(",", " ").split() if x]
        removing = [x for x in remove.replace(",", " ").split() if x]
        return await done(
            request, conversation_id, actions.label(sessions, conversation_id, adding, removing)
        )

    @router.post("/{conversation_id}/close", include_in_schema=False, **write)
    async def close(request: Request, conversation_id: RowId) -> Response:
        return await done(request, conversation_id, actions.close(sessions, conversation_id))

    @router.post("/{conversation_id}/reopen", include_in_schema=False, **write)
    async def reopen(request: Request, conversation_id: RowId) -> Response:
        return await done(request, conversation_id, actions.reopen(sessions, conversation_id))

    return router
