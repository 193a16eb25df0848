"""What an agent does to a conversation: answer it, assign it, label it, close or reopen it.

Each action is one transaction and refuses bad input with an `InboxError` naming the problem,
writing nothing. A human answer wins over the status bot: `handed_off` keeps the bot quiet in
that conversation until it is closed. The CLI (`broadcaster inbox`) and the staff API
(`/api/v1/inbox`) are thin shells over these functions and share their JSON shapes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import String, cast, func
from sqlalchemy.orm import aliased
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from broadcaster.auth.audit import record
from broadcaster.config import Settings
from broadcaster.db import SessionFactory
from broadcaster.errors import InvalidInput, NotFound
from broadcaster.inbox.answers import Answer, NothingToAnswer, queue_answers
from broadcaster.inbox.reply_templates import ReplyTemplateError, ReplyTemplates, current_incident
from broadcaster.models import Conversation, Message, utcnow

__all__ = [
    "MAX_LIMIT",
    "MAX_TEXT",
    "STATUSES",
    "CannedPreview",
    "InboxError",
    "UnknownConversation",
    "assign",
    "canned_previews",
    "close",
    "find_conversations",
    "label",
    "reopen",
    "reply",
]

MAX_TEXT = 10_000  # an answer, not a document: longer is a paste gone wrong
MAX_NAME = 120  # Message.author and Conversation.assignee columns
MAX_LIMIT = 500
STATUSES = ("open", "pending", "closed")
LABEL = re.compile(r"[a-z0-9_-]{1,32}")


class InboxError(InvalidInput):
    """An agent's action refused: the message says what is wrong and how to fix it."""


class UnknownConversation(InboxError, NotFound):
    """No conversation has this id (the API answers 404)."""


@dataclass(frozen=True, slots=True)
class CannedPreview:
    """A canned reply as a customer would read it now; `problem` when the template does not render."""

    name: str
    text: str
    problem: str = ""


async def reply(
    sessions: SessionFactory,
    settings: Settings,
    conversation_id: int,
    *,
    text: str | None,
    canned: str | None,
    author: str,
    now: datetime | None = None,
) -> Message:
    """Queue an agent's answer in the customer's thread; the conversation waits for the customer.

    Give `text` or the name of a `canned` reply (rendered in the conversation's language with
    the live incident state). Answering a closed conversation reopens it as pending.
    """
    now = now or utcnow()
    author = _checked_name(author, "author")
    if not author:
        raise InboxError("the reply needs an author (the agent's name)")
    if (text is None) == (canned is None):
        raise InboxError("give either the text of the reply or a canned reply, not both")
    templates = ReplyTemplates(settings)
    async with sessions() as session:
        conversation = await _locked(session, conversation_id)
        language = templates.language(conversation.locale)
        if canned is not None:
            body = await _canned_text(session, templates, conversation, canned, now)
        else:
            body = _checked_text(text or "")
        try:
            queued = await queue_answers(
                await session.connection(), [Answer(conversation_id, body, language, author)], now
            )
            (message_id,) = queued.message_ids
        except NothingToAnswer as exc:
            raise InboxError(str(exc)) from None
        conversation.status = "pending"  # the filer sets it back to open when the customer writes
        conversation.handed_off = True
        session.add(conversation)
        what = f"canned reply {canned!r}" if canned is not None else f"{len(body)} characters"
        record(session, "inbox.reply", f"conversation:{conversation_id}", f"answered by {author}: {what}")
        await session.commit()
        message = await session.get(Message, message_id)
        assert message is not None
        return message


def _checked_text(text: str) -> str:
    body = text.strip()
    if not body:
        raise InboxError("the reply is empty")
    if len(body) > MAX_TEXT:
        raise InboxError(f"the reply is {len(body)} characters long; at most {MAX_TEXT} are allowed")
    return body


async def _canned_text(
    session: AsyncSession, templates: ReplyTemplates, conversation: Conversation, name: str, now: datetime
) -> str:
    available = templates.canned_names(conversation.locale)
    if name not in available:  # bot answers share the folder but are not canned replies
        language = templates.language(conversation.locale)
        raise InboxError(
            f"no canned reply {name!r} in {language} (available: {', '.join(available) or 'none'})"
        )
    incident = await current_incident(session, conversation.incident_id)
    try:
        return templates.render(
            name, conversation.locale, incident=incident, now=now, customer_name=conversation.customer_name
        )
    except ReplyTemplateError as exc:
        raise InboxError(str(exc)) from None


async def assign(sessions: SessionFactory, conversation_id: int, assignee: str) -> Conversation:
    """Give the conversation to an agent; "" unassigns it."""
    name = _checked_name(assignee, "assignee")
    summary = f"assigned to {name}" if name else "unassigned"
    return await _change(
        sessions, conversation_id, lambda c: setattr(c, "assignee", name), "inbox.assign", summary
    )


async def label(
    sessions: SessionFactory, conversation_id: int, add: Sequence[str], remove: Sequence[str]
) -> Conversation:
    """Add and remove labels (lower-case, `[a-z0-9_-]{1,32}`); the result is sorted and unique."""
    added, removed = {_checked_label(x) for x in add}, {_checked_label(x) for x in remove}
    both = sorted(added & removed)
    if both:
        raise InboxError(f"label {both[0]!r} is both added and removed")

    def relabel(conversation: Conversation) -> None:
        conversation.labels = sorted((set(conversation.labels) | added) - removed)

    summary = " ".join([f"+{x}" for x in sorted(added)] + [f"-{x}" for x in sorted(removed)])
    return await _change(sessions, conversation_id, relabel, "inbox.label", summary)


async def close(sessions: SessionFactory, conversation_id: int) -> Conversation:
    """Done: the bot may answer this customer again when they next write."""

    def closed(conversation: Conversation) -> None:
        conversation.status, conversation.handed_off = "closed", False

    return await _change(sessions, conversation_id, closed, "inbox.close")


async def reopen(sessions: SessionFactory, conversation_id: int) -> Conversation:
    """Back to open: it needs an answer."""
    return await _change(sessions, conversation_id, lambda c: setattr(c, "status", "open"), "inbox.reopen")


async def find_conversations(
    sessions: SessionFactory,
    *,
    status: str | None = None,
    incident_id: int | None = None,
    assignee: str | None = None,
    label: str | None = None,
    limit: int = 100,
) -> list[tuple[Conversation, Message | None]]:
    """Conversations matching every filter given, most recent first, each with its latest message.

    Messages stored but not yet filed are filed first, so an agent never looks at a stale inbox.
    """
    if status is not None and status not in STATUSES:
        raise InboxError(f"unknown status {status!r} (choose from {', '.join(STATUSES)})")
    if not 1 <= limit <= MAX_LIMIT:
        raise InboxError(f"limit must be between 1 and {MAX_LIMIT} (got {limit})")
    statement = select(Conversation)
    if status is not None:
        statement = statement.where(Conversation.status == status)
    if incident_id is not None:
        statement = statement.where(Conversation.incident_id == incident_id)
    if assignee is not None:
        statement = statement.where(Conversation.assignee == assignee.strip())
    if label is not None:
        # Labels are [a-z0-9_-] only, so '"name"' in the JSON text is an exact match on both
        # SQLite and PostgreSQL; "_" is a LIKE wildcard and is escaped.
        quoted = '%"' + _checked_label(label).replace("_", "\\_") + '"%'
        statement = statement.where(cast(col(Conversation.labels), String).like(quoted, escape="\\"))
    statement = statement.order_by(col(Conversation.last_message_at).desc(), col(Conversation.id).desc())
    async with sessions() as session:
        conversations = list(await session.exec(statement.limit(limit)))
        latest = await _latest_messages(session, [c.id for c in conversations if c.id is not None])
    return [(c, latest.get(c.id or 0)) for c in conversations]


async def _latest_messages(session: AsyncSession, conversation_ids: list[int]) -> dict[int, Message]:
    """Each conversation's latest message, in one query."""
    if not conversation_ids:
        return {}
    rank = (
        func.row_number()
        .over(
            partition_by=col(Message.conversation_id),
            order_by=col(Message.id).desc(),  # the order they reached us, as `inbox show` lists them
        )
        .label("rank")
    )
    ranked = select(Message, rank).where(col(Message.conversation_id).in_(conversation_ids)).subquery()
    latest = aliased(Message, ranked)
    rows = await session.exec(select(latest).where(ranked.c.rank == 1))
    return {message.conversation_id: message for message in rows}


async def canned_previews(
    sessions: SessionFactory, settings: Settings, locale: str, now: datetime | None = None
) -> list[CannedPreview]:
    """Every canned reply of `locale`, rendered with the state of the latest open incident."""
    now = now or utcnow()
    templates = ReplyTemplates(settings)
    async with sessions() as session:
        incident = await current_incident(session, None)
    previews = []
    for name in templates.canned_names(locale):
        try:
            previews.append(CannedPreview(name, templates.render(name, locale, incident=incident, now=now)))
        except ReplyTemplateError as exc:  # one broken team template must not hide the others
            previews.append(CannedPreview(name, "", str(exc)))
    return previews


async def _locked(session: AsyncSession, conversation_id: int) -> Conversation:
    """The conversation, locked until the transaction ends (PostgreSQL; SQLite writes serially)."""
    conversation = await session.get(Conversation, conversation_id, with_for_update=True)
    if conversation is None:
        raise UnknownConversation(f"no conversation #{conversation_id}")
    return conversation


async def _change(
    sessions: SessionFactory,
    conversation_id: int,
    change: Callable[[Conversation], None],
    action: str,
    summary: str = "",
) -> Conversation:
    async with sessions() as session:
        conversation = await _locked(session, conversation_id)
        change(conversation)
        session.add(conversation)
        record(session, action, f"conversation:{conversation_id}", summary)
        await session.commit()
        return conversation


def _checked_name(value: str, field: str) -> str:
    name = value.strip()
    if len(name) > MAX_NAME:
        raise InboxError(f"{field} is {len(name)} characters long; at most {MAX_NAME} are allowed")
    if any(not ch.isprintable() for ch in name):
        raise InboxError(f"{field} {name!r} contains control characters")
    return name


def _checked_label(value: str) -> str:
    name = value.strip().lower()
    if not LABEL.fullmatch(name):
        raise InboxError(f"label {value!r} is not allowed: use 1 to 32 of a-z, 0-9, '_' and '-'")
    return name
