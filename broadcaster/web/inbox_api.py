"""The staff API of the shared inbox (`/api/v1/inbox`): what `broadcaster inbox` does, over HTTP.

Every route needs a user's token or session with `inbox:read` (reading) or `inbox:write`
(answering, sorting): customer messages are never served to anyone else. Answers are JSON only,
so a customer's `<script>` comes back as a JSON string, never as a page. Errors: 401 no or
a bad token, 403 a role that may not, 404 unknown conversation, 400 a refused action (the
`InboxError` message), 422 a malformed request naming the field.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Literal, TypeVar

from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from broadcaster.auth.roles import Permission
from broadcaster.config import Settings
from broadcaster.db import SessionFactory
from broadcaster.inbox import actions as inbox_actions
from broadcaster.inbox.actions import (
    MAX_LIMIT,
    MAX_TEXT,
    InboxError,
    UnknownConversation,
)
from broadcaster.inbox.filing import conversation_dict, conversation_with_messages, message_dict
from broadcaster.web.ids import RowId, RowIdFilter
from broadcaster.web.staff_gate import StaffGate, needs, principal_of

JsonObject = dict[str, object]
T = TypeVar("T")


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ReplyBody(_Body):
    """`text` or `canned` (a canned reply's name), and the agent who answers."""

    text: str | None = Field(default=None, max_length=MAX_TEXT)
    canned: str | None = Field(default=None, max_length=64)
    author: str | None = Field(default=None, min_length=1, max_length=120)  # default: the caller's name


class AssignBody(_Body):
    assignee: str = Field(max_length=120)  # "" unassigns


class LabelsBody(_Body):
    add: list[str] = Field(default_factory=list, max_length=50)
    remove: list[str] = Field(default_factory=list, max_length=50)


def inbox_router(
    settings: Settings, sessions: SessionFactory, gate: StaffGate, wake: Callable[[str], None] | None = None
) -> APIRouter:
    """The `/api/v1/inbox` routes: reading needs inbox:read, answering and sorting inbox:write."""
    router = gate.router("/api/v1/inbox")
    read, write = needs(Permission.INBOX_READ), needs(Permission.INBOX_WRITE)

    @router.get("", **read)
    async def list_conversations(
        status: Literal["open", "pending", "closed"] | None = None,
        incident: RowIdFilter = None,
        assignee: str | None = None,
        label: str | None = None,
        limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 100,
    ) -> list[JsonObject]:
        """Conversations matching every filter given, most recent first, with their last message."""
        rows = await _refusing_errors(
            inbox_actions.find_conversations(
                sessions, status=status, incident_id=incident, assignee=assignee, label=label, limit=limit
            )
        )
        return [conversation_dict(c, m) for c, m in rows]

    @router.get("/canned", **read)
    async def canned(locale: Annotated[str | None, Query(max_length=16)] = None) -> list[JsonObject]:
        """The canned replies, each rendered for the current state of things."""
        previews = await inbox_actions.canned_previews(
            sessions, settings, locale or settings.brand.default_locale
        )
        return [{"name": p.name, "text": p.text, "problem": p.problem} for p in previews]

    @router.get("/{conversation_id}", **read)
    async def show(conversation_id: RowId) -> JsonObject:
        """One conversation and every message in it, in order."""
        found = await conversation_with_messages(sessions, conversation_id)
        if found is None:
            raise HTTPException(status_code=404, detail=f"no conversation #{conversation_id}")
        conversation, messages = found
        return conversation_dict(conversation) | {"messages": [message_dict(m) for m in messages]}

    @router.post("/{conversation_id}/reply", status_code=202, **write)
    async def reply(conversation_id: RowId, body: ReplyBody, request: Request) -> JsonObject:
        """Queue an answer in the customer's thread (202: the dispatcher sends it)."""
        message = await _refusing_errors(
            inbox_actions.reply(
                sessions,
                settings,
                conversation_id,
                text=body.text,
                canned=body.canned,
                author=body.author or principal_of(request).user.display_name,
            )
        )
        if wake is not None:  # in `serve`: send it now rather than at the next poll
            wake(message.channel)
        return message_dict(message)

    @router.post("/{conversation_id}/assign", **write)
    async def assign(conversation_id: RowId, body: AssignBody) -> JsonObject:
        return conversation_dict(
            await _refusing_errors(inbox_actions.assign(sessions, conversation_id, body.assignee))
        )

    @router.post("/{conversation_id}/labels", **write)
    async def labels(conversation_id: RowId, body: LabelsBody) -> JsonObject:
        return conversation_dict(
            await _refusing_errors(inbox_actions.label(sessions, conversation_id, body.add, body.remove))
        )

    @router.post("/{conversation_id}/close", **write)
    async def close(conversation_id: RowId) -> JsonObject:
        return conversation_dict(await _refusing_errors(inbox_actions.close(sessions, conversation_id)))

    @router.post("/{conversation_id}/reopen", **write)
    async def reopen(conversation_id: RowId) -> JsonObject:
        return conversation_dict(await _refusing_errors(inbox_actions.reopen(sessions, conversation_id)))

    return router


async def _refusing_errors(action: Awaitable[T]) -> T:
    """Run an inbox action; its refusals become 404 (unknown conversation) or 400 (the reason)."""
    try:
        return await action
    except UnknownConversation as exc:
        raise HTTPException(status_code=404, detail=str(exc)) from None
    except InboxError as exc:
        raise HTTPException(status_code=400, detail=str(exc)) from None
