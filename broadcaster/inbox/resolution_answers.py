"""Customers who wrote to us about an incident are told how it turns out, in their own thread.

When a draft made from their reports is published, and again when the incident is resolved,
every conversation linked to it gets one personal answer — whatever its state: the bot's own
answer left it `pending`, an agent may be working it — except a conversation an agent closed, or
one whose customer asked us to stop (their latest message). "Once each": the conversation keeps
the update it was answered about (`bot_answered_state`), so a conversation already answered for
this update is not answered again, and the bot does not repeat it to a status question either.
Written in the publication's transaction.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from babel.lists import format_list
from sqlalchemy import Connection, func, select, update
from sqlmodel.ext.asyncio.session import AsyncSession

from broadcaster.config import Settings
from broadcaster.inbox.answers import BOT, Answer, queue_answers_sync
from broadcaster.inbox.reply_templates import IncidentState, ReplyTemplates
from broadcaster.models import Conversation, Incident, IncidentUpdate, Message
from broadcaster.publishing.component_status import affected_elsewhere_sync

__all__ = ["answer_linked_conversations"]

_conversations = Conversation.__table__  # type: ignore[attr-defined]
_messages = Message.__table__  # type: ignore[attr-defined]

Occasion = Literal["published", "resolved"]
_TEMPLATES: dict[Occasion, str] = {"published": "status_incident", "resolved": "resolution"}


async def answer_linked_conversations(
    session: AsyncSession,
    settings: Settings,
    incident: Incident,
    published: IncidentUpdate,
    occasion: Occasion,
    now: datetime,
) -> int:
    """Queue the answer about `published` for every conversation linked to `incident`; return how many."""
    assert incident.id is not None and published.id is not None
    state = IncidentState(
        id=incident.id, title=incident.title, status=published.status, impact=incident.impact,
        components=tuple(incident.components), latest_update_id=published.id, eta_at=published.eta_at,
        next_update_at=published.next_update_at, alternative=next(iter(incident.workaround.values()), ""),
        compensation=incident.compensation or "", titles=dict(incident.title_translations),
        alternatives=dict(incident.workaround),
        compensations={settings.brand.default_locale: incident.compensation or "",
                       **incident.compensation_translations},
    )  # fmt: skip
    connection = await session.connection()
    return await connection.run_sync(
        lambda sync: _answer(sync, settings, state, dict(published.messages), _TEMPLATES[occasion], now)
    )


def _answer(
    connection: Connection,
    settings: Settings,
    incident: IncidentState,
    messages: dict[str, str],
    template: str,
    now: datetime,
) -> int:
    rows = connection.execute(
        select(_conversations.c.id, _conversations.c.locale, _conversations.c.customer_name).where(
            _conversations.c.incident_id == incident.id,
            _conversations.c.status != "closed",
            (_conversations.c.bot_answered_state.is_(None))
            | (_conversations.c.bot_answered_state != incident.latest_update_id),
        )
    ).all()
    stopped = _asked_to_stop(connection, [row.id for row in rows])
    rows = [row for row in rows if row.id not in stopped]
    if not rows:
        return 0
    templates = ReplyTemplates(settings)
    default = settings.brand.default_locale
    # A resolution names what something else still affects; a publication has nothing to add.
    still = (
        affected_elsewhere_sync(connection, incident.id, incident.components)
        if template == "resolution"
        else []
    )
    answers = []
    for row in rows:
        language = templates.language(row.locale)
        labels = [settings.component_label(c, language) for c in still]
        text = templates.render(
            template, language, incident=incident, now=now, customer_name=row.customer_name,
            message=messages.get(language) or messages.get(default, ""),
            still_affected=format_list(labels, locale=language) if labels else "", still_many=len(labels) > 1,
        )  # fmt: skip
        answers.append(Answer(row.id, text, language, BOT))
    queue_answers_sync(connection, answers, now)
    answered = [row.id for row in rows]
    connection.execute(
        update(_conversations)
        .where(_conversations.c.id.in_(answered))
        .values(status="pending", bot_answered_state=incident.latest_update_id)
    )
    return len(answers)


def _asked_to_stop(connection: Connection, conversation_ids: list[int]) -> set[int]:
    """The conversations whose customer's latest message asks us to stop writing."""
    if not conversation_ids:
        return set()
    latest = (
        select(func.max(_messages.c.id))
        .where(_messages.c.conversation_id.in_(conversation_ids), _messages.c.direction == "in")
        .group_by(_messages.c.conversation_id)
    )
    statement = select(_messages.c.conversation_id).where(
        _messages.c.id.in_(latest), _messages.c.intent == "unsubscribe"
    )
    return set(connection.execute(statement).scalars())
