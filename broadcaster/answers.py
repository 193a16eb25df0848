"""Answers to customers — from an agent or the status bot — queued through the outbox.

An answer is an outgoing `Message` in the conversation plus one `Delivery` row carrying the text
(`payload`) and where it goes (`reply`): the customer's latest message, in its own thread (the
Telegram message, the tweet or DM, the comment or Messenger chat, the e-mail with its subject
and references). Both are written in the caller's transaction, so an answer is never half
queued, and the dispatcher sends it with the retries and dead letters of broadcasts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from broadcaster.message import RenderedMessage
from broadcaster.models import Delivery, InboundRecord, Message, utcnow
from channels.base import Reply

QUEUED = "queued"
BOT = "bot"  # the author of automatic answers


@dataclass(frozen=True, slots=True)
class Answer:
    """One answer to write: which conversation, what text, in which language, by whom."""

    conversation_id: int
    text: str
    locale: str
    author: str  # an agent's name, or "bot"


@dataclass(frozen=True, slots=True)
class _Thread:
    channel: str
    key: str
    handle: str
    in_reply_to: str
    raw: dict[str, Any]


class NothingToAnswer(ValueError):
    """The conversation has no customer message to answer (or does not exist)."""


async def queue_answers(
    connection: AsyncConnection, answers: Sequence[Answer], now: datetime | None = None
) -> list[int]:
    """Write each answer as an outgoing message and its outbox row; return the message ids.

    Raises `NothingToAnswer` (writing nothing) when a conversation has no customer message.
    """
    if not answers:
        return []
    now = now or utcnow()
    threads = await _threads(connection, {a.conversation_id for a in answers})
    missing = sorted({a.conversation_id for a in answers} - threads.keys())
    if missing:
        raise NothingToAnswer(f"conversation {missing[0]} has no customer message to answer")
    messages = Message.__table__  # type: ignore[attr-defined]
    ids = (
        (
            await connection.execute(
                insert(messages).returning(messages.c.id, sort_by_parameter_order=True),
                [
                    {
                        "conversation_id": a.conversation_id,
                        "direction": "out",
                        "channel": threads[a.conversation_id].channel,
                        "external_id": None,
                        "text": a.text,
                        "intent": "",
                        "language": a.locale,
                        "reply_to": threads[a.conversation_id].in_reply_to,
                        "author": a.author,
                        "delivery_status": QUEUED,
                        "delivery_error": "",
                        "created_at": now,
                    }
                    for a in answers
                ],
            )
        )
        .scalars()
        .all()
    )
    await connection.execute(
        insert(Delivery),
        [_delivery_row(answer, threads[answer.conversation_id], message_id, now)
         for answer, message_id in zip(answers, ids, strict=True)],
    )  # fmt: skip
    return list(ids)


def _delivery_row(answer: Answer, thread: _Thread, message_id: int, now: datetime) -> dict[str, Any]:
    extra = {"auto_submitted": True} if answer.author == BOT else {}
    payload = RenderedMessage(
        channel=thread.channel, locale=answer.locale, kind="reply", parts=(answer.text,), extra=extra
    )
    reply = Reply(
        conversation_key=thread.key,
        customer_handle=thread.handle,
        in_reply_to=thread.in_reply_to,
        locale=answer.locale,
        subject=str(thread.raw.get("subject") or ""),
        references=str(thread.raw.get("references") or ""),
        reply_token=_reply_token(thread.raw),
    )
    return {
        "update_id": None,
        "channel": thread.channel,
        "target": thread.key,
        "locale": answer.locale,
        "rendition_id": None,
        "subscription_id": None,
        "message_id": message_id,
        "payload": payload.to_json(),
        "reply": reply.to_dict(),
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
        "claim_token": "",
        "last_error": "",
        "provider_message_id": "",
    }


def _reply_token(raw: dict[str, Any]) -> str:
    """E-mail: "<update>.<token>", so the customer's next reply reaches the same conversation."""
    token, update_id = raw.get("token"), raw.get("update_id")
    return f"{update_id}.{token}" if token and update_id is not None else ""


async def _threads(connection: AsyncConnection, conversation_ids: set[int]) -> dict[int, _Thread]:
    """Each conversation's latest customer message: what an answer replies to."""
    messages = Message.__table__  # type: ignore[attr-defined]
    conversations = messages.metadata.tables["conversation"]
    records = InboundRecord.__table__  # type: ignore[attr-defined]
    latest = (
        select(messages.c.conversation_id, func.max(messages.c.id).label("message_id"))
        .where(messages.c.conversation_id.in_(conversation_ids), messages.c.direction == "in")
        .group_by(messages.c.conversation_id)
        .subquery()
    )
    statement = (
        select(
            conversations.c.id,
            conversations.c.channel,
            conversations.c.conversation_key,
            conversations.c.customer_handle,
            messages.c.external_id,
            records.c.raw,
        )
        .join(latest, latest.c.conversation_id == conversations.c.id)
        .join(messages, messages.c.id == latest.c.message_id)
        .outerjoin(
            records,
            and_(records.c.channel == messages.c.channel, records.c.external_id == messages.c.external_id),
        )
    )
    return {
        row.id: _Thread(
            row.channel,
            row.conversation_key,
            row.customer_handle,
            row.external_id or "",
            row.raw if isinstance(row.raw, dict) else {},
        )
        for row in await connection.execute(statement)
    }
