"""The GDPR erase: a subscriber and everything we hold on them, in one transaction — their
subscriptions, the messages queued or sent to them, what capture mode stored for them, and their
conversations in the inbox (their messages, our answers, the raw webhook records).

The audit log keeps that it happened, with counts and the subscriber's number, never an address.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, or_
from sqlalchemy import delete as sql_delete
from sqlmodel import col, select

from broadcaster.auth.audit import record
from broadcaster.db import SessionFactory
from broadcaster.errors import NotFound
from broadcaster.models import (
    CapturedMessage,
    Conversation,
    Delivery,
    InboundRecord,
    Message,
    Subscriber,
    Subscription,
)

__all__ = ["Erased", "erase_subscriber"]


@dataclass(frozen=True, slots=True)
class Erased:
    subscriber_id: int
    subscriptions: int
    deliveries: int
    captured: int
    conversations: int
    messages: int
    inbound_records: int

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def _theirs(subscriptions: list[Subscription], channel: Any, *keys: Any) -> ColumnElement[bool]:
    """Rows on one of their channels whose key is one of their addresses (or e-mail reply tokens)."""
    return or_(
        *(
            and_(channel == s.channel, or_(*(key.in_([s.address, s.reply_token]) for key in keys)))
            for s in subscriptions
        )
    )


async def erase_subscriber(sessions: SessionFactory, subscriber_id: int) -> Erased:
    async with sessions() as session, session.begin():
        if await session.get(Subscriber, subscriber_id) is None:
            raise NotFound(f"no subscriber #{subscriber_id}")
        subscriptions = list(
            await session.exec(select(Subscription).where(Subscription.subscriber_id == subscriber_id))
        )
        connection = await session.connection()

        async def delete(model: type, where: ColumnElement[bool]) -> int:
            return int((await connection.execute(sql_delete(model).where(where))).rowcount or 0)

        conversations: list[int] = []
        if subscriptions:
            found = select(Conversation.id).where(
                _theirs(
                    subscriptions,
                    col(Conversation.channel),
                    col(Conversation.conversation_key),
                    col(Conversation.customer_handle),
                )  # fmt: skip
            )
            conversations = [c for c in await session.exec(found) if c is not None]
        message_ids = [
            m
            for m in await session.exec(
                select(Message.id).where(col(Message.conversation_id).in_(conversations))
            )
            if m is not None
        ]
        deliveries = await delete(Delivery, or_(
            col(Delivery.subscription_id).in_([s.id for s in subscriptions]),
            col(Delivery.message_id).in_(message_ids),
        ))  # fmt: skip
        captured = inbound = 0
        if subscriptions:
            captured = await delete(
                CapturedMessage,
                _theirs(subscriptions, col(CapturedMessage.channel), col(CapturedMessage.target)),
            )
            inbound = await delete(
                InboundRecord,
                _theirs(
                    subscriptions,
                    col(InboundRecord.channel),
                    col(InboundRecord.conversation_key),
                    col(InboundRecord.customer_handle),
                ),  # fmt: skip
            )
        messages = await delete(Message, col(Message.id).in_(message_ids))
        await delete(Conversation, col(Conversation.id).in_(conversations))
        count = await delete(Subscription, col(Subscription.subscriber_id) == subscriber_id)
        await delete(Subscriber, col(Subscriber.id) == subscriber_id)
        erased = Erased(subscriber_id, count, deliveries, captured, len(conversations), messages, inbound)
        summary = ", ".join(f"{n} {what}" for what, n in erased.as_dict().items() if what != "subscriber_id")
        record(session, "subscribers.erase", f"subscriber:{subscriber_id}", summary)
    return erased
