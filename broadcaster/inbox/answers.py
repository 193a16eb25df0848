"""Answers to customers — from an agent or the status bot — queued through the outbox.

An answer is an outgoing `Message` in the conversation plus one `Delivery` row carrying the text
(`payload`) and where it goes (`reply`): the customer's latest message, in its own thread (the
Telegram message, the tweet or DM, the comment or Messenger chat, the e-mail with its subject
and references). Both are written in the caller's transaction, so an answer is never half
queued, and the dispatcher sends it with the retries and dead letters of broadcasts.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, case, func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from broadcaster.delivery.outbox import ANSWER, ClaimedDelivery, new_delivery
from broadcaster.errors import InvalidInput
from broadcaster.message import RenderedMessage
from broadcaster.models import INERT, Delivery, InboundRecord, Message, utcnow
from channels.base import Reply

__all__ = [
    "Answer",
    "Answered",
    "BOT",
    "HandOff",
    "NothingToAnswer",
    "QUEUED",
    "Queued",
    "queue_answers",
    "queue_answers_sync",
]

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
class Answered:
    """The customer message an answer replies to, in its conversation."""

    channel: str
    key: str
    handle: str
    in_reply_to: str
    raw: dict[str, Any]


class NothingToAnswer(InvalidInput):
    """The conversation has no customer message to answer (or does not exist)."""


@dataclass(frozen=True, slots=True)
class HandOff:
    """Answers on these channels are written already claimed, for this process's workers to send
    at once (no claim transaction, no poll). The lease still applies: if the process dies before
    sending, they are claimed again when it expires, like any row in flight."""

    channels: frozenset[str]
    lease_seconds: float
    token: str = field(default_factory=lambda: secrets.token_hex(8))


@dataclass(frozen=True, slots=True)
class Queued:
    message_ids: list[int]  # in the order of the answers
    claimed: list[ClaimedDelivery]  # for the hand-off: give them to the workers once committed


async def queue_answers(
    connection: AsyncConnection,
    answers: Sequence[Answer],
    now: datetime | None = None,
    *,
    hand_off: HandOff | None = None,
    replying_to: Mapping[int, Answered] | None = None,
) -> Queued:
    """`queue_answers_sync` in the caller's transaction on an async connection."""
    return await connection.run_sync(
        lambda sync: queue_answers_sync(sync, answers, now, hand_off=hand_off, replying_to=replying_to)
    )


def queue_answers_sync(
    connection: Connection,
    answers: Sequence[Answer],
    now: datetime | None = None,
    *,
    hand_off: HandOff | None = None,
    replying_to: Mapping[int, Answered] | None = None,
) -> Queued:
    """Write each answer as an outgoing message and its outbox row, in the caller's transaction.

    Rows on `hand_off` channels are written claimed; every other row is pending for any worker.
    `replying_to`: the message each conversation's answer replies to, when the caller has just
    filed it (else it is read). Raises `NothingToAnswer` (writing nothing) when a conversation
    has no customer message.
    """
    if not answers:
        return Queued([], [])
    now = now or utcnow()
    wanted = {a.conversation_id for a in answers}
    if replying_to is not None and wanted <= replying_to.keys():
        threads = {conversation_id: replying_to[conversation_id] for conversation_id in wanted}
    else:
        threads = _threads(connection, wanted)
    missing = sorted({a.conversation_id for a in answers} - threads.keys())
    if missing:
        raise NothingToAnswer(f"conversation {missing[0]} has no customer message to answer")
    messages = Message.__table__  # type: ignore[attr-defined]
    rows = [
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
    ]
    # RETURNING each row's key, not the parameter order: one multi-row INSERT on SQLite instead
    # of one statement per answer. Two equal answers in one conversation are interchangeable.
    returning = insert(messages).returning(messages.c.id, messages.c.conversation_id, messages.c.text)
    ids_by_key: dict[tuple[int, str], list[int]] = {}
    for row in sorted(connection.execute(returning, rows).all(), key=lambda r: r.id):
        ids_by_key.setdefault((row.conversation_id, row.text), []).append(row.id)
    ids = [ids_by_key[(a.conversation_id, a.text)].pop(0) for a in answers]
    deliveries = [
        _delivery_row(answer, threads[answer.conversation_id], message_id, now)
        for answer, message_id in zip(answers, ids, strict=True)
    ]
    claimed = [d for d in deliveries if hand_off is not None and d["channel"] in hand_off.channels]
    for delivery in claimed:
        assert hand_off is not None
        delivery.update(
            status="sending",
            attempts=1,
            claim_token=hand_off.token,
            lease_until=now + timedelta(seconds=hand_off.lease_seconds),
        )
    table = Delivery.__table__  # type: ignore[attr-defined]
    inserted = connection.execute(insert(table).returning(table.c.id, table.c.message_id), deliveries)
    delivery_ids = {returned.message_id: returned.id for returned in inserted}
    return Queued(
        ids,
        [
            ClaimedDelivery(
                id=delivery_ids[row["message_id"]],
                kind=ANSWER,
                update_id=None,
                channel=row["channel"],
                target=row["target"],
                locale=row["locale"],
                rendition_id=None,
                subscription_id=None,
                attempts=1,
                claim_token=row["claim_token"],
                retry_from=row["created_at"],
                message_id=row["message_id"],
                payload=row["payload"],
                reply=row["reply"],
            )  # fmt: skip
            for row in claimed
        ],
    )


def _delivery_row(answer: Answer, thread: Answered, message_id: int, now: datetime) -> dict[str, Any]:
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
    return new_delivery(
        kind=ANSWER,
        channel=thread.channel,
        target=thread.key,
        locale=answer.locale,
        now=now,
        message_id=message_id,
        payload=payload.to_json(),
        reply=reply.to_dict(),
    )


def _reply_token(raw: dict[str, Any]) -> str:
    """E-mail: "<update>.<token>", so the customer's next reply reaches the same conversation."""
    token, update_id = raw.get("token"), raw.get("update_id")
    return f"{update_id}.{token}" if token and update_id is not None else ""


def _threads(connection: Connection, conversation_ids: set[int]) -> dict[int, Answered]:
    """Each conversation's latest customer message: what an answer replies to.

    The latest verified one when there is one: an unverified or machine-made message must not
    choose the subject our answer carries to the subscriber (it then gets the default subject).
    """
    messages = Message.__table__  # type: ignore[attr-defined]
    conversations = messages.metadata.tables["conversation"]
    records = InboundRecord.__table__  # type: ignore[attr-defined]
    trusted = func.max(case((messages.c.trust.notin_(INERT), messages.c.id)))
    latest = (
        select(
            messages.c.conversation_id,
            func.coalesce(trusted, func.max(messages.c.id)).label("message_id"),
        )
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
            messages.c.trust,
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
        row.id: Answered(
            row.channel,
            row.conversation_key,
            row.customer_handle,
            row.external_id or "",
            _own_subject(row.raw, row.trust),
        )
        for row in connection.execute(statement)
    }


def _own_subject(raw: object, trust: str) -> dict[str, Any]:
    found = raw if isinstance(raw, dict) else {}
    return {**found, "subject": ""} if trust in INERT else found
