"""At resolution, every customer who wrote to us about the incident gets a personal answer.

Each open conversation linked to the incident is answered in its own channel and thread (the
resolution message in the customer's language, the compensation if any, thanks) and moves to
`pending`: the customer's next message reopens it. Written in the resolution's transaction.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlmodel.ext.asyncio.session import AsyncSession

from broadcaster.answers import BOT, Answer, queue_answers
from broadcaster.config import Settings
from broadcaster.models import Conversation, Incident
from broadcaster.reply_templates import IncidentState, ReplyTemplates


async def answer_linked_conversations(
    session: AsyncSession, settings: Settings, incident: Incident, messages: dict[str, str], now: datetime
) -> int:
    """Queue the resolution answer for every open conversation about `incident`; return how many."""
    assert incident.id is not None
    table = Conversation.__table__  # type: ignore[attr-defined]
    connection = await session.connection()
    rows = (
        await connection.execute(
            select(table.c.id, table.c.locale, table.c.customer_name).where(
                table.c.incident_id == incident.id, table.c.status == "open"
            )
        )
    ).all()
    if not rows:
        return 0
    templates = ReplyTemplates(settings)
    state = IncidentState(
        id=incident.id, title=incident.title, status="resolved", impact=incident.impact,
        components=tuple(incident.components), latest_update_id=0, eta_at=None, next_update_at=None,
        alternative="", compensation=incident.compensation or "",
    )  # fmt: skip
    default = settings.brand.default_locale
    answers = []
    for row in rows:
        language = templates.language(row.locale)
        text = templates.render(
            "resolution", language, incident=state, now=now, customer_name=row.customer_name,
            message=messages.get(language) or messages.get(default, ""),
        )  # fmt: skip
        answers.append(Answer(row.id, text, language, BOT))
    await queue_answers(connection, answers, now)
    await connection.execute(
        update(table).where(table.c.id.in_([r.id for r in rows])).values(status="pending")
    )
    return len(answers)
