"""The shared inbox: file every stored customer message into its conversation, once.

Webhooks and pollers only store (`inbound_message`) and acknowledge; filing happens here, after:
one conversation per customer per channel, the message deduplicated on (channel, external_id),
its intent and language detected, and the conversation linked to the incident it is about — the
broadcast it replies to, or, while an incident is open, a message whose intent is the outage.
"""

from __future__ import annotations

import asyncio
import contextlib

from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from broadcaster.db import SessionFactory, dialect_name
from broadcaster.intent import classify
from broadcaster.models import (
    Conversation,
    Delivery,
    InboundRecord,
    Incident,
    IncidentUpdate,
    Message,
    utcnow,
)

OUTAGE_INTENTS = frozenset({"status_question", "complaint"})
BATCH = 500


async def file_pending(sessions: SessionFactory, *, limit: int = BATCH) -> int:
    """File stored messages not yet in the inbox; returns how many were filed."""
    async with sessions() as session:
        statement = (
            select(InboundRecord)
            .where(col(InboundRecord.processed_at).is_(None))
            .order_by(col(InboundRecord.id))
            .limit(limit)
        )
        if dialect_name(session) == "postgresql":  # several nodes: each record filed by one of them
            statement = statement.with_for_update(skip_locked=True)
        records = list(await session.exec(statement))
        for record in records:
            await _file(session, record)
            record.processed_at = utcnow()
            session.add(record)
        await session.commit()
    return len(records)


async def _file(session: AsyncSession, record: InboundRecord) -> None:
    conversation = await _conversation_for(session, record)
    found = classify(record.text)
    language = record.language.split("-")[0].lower() or found.language or conversation.locale
    incident_id = await _incident_for(session, record, found.intent) or conversation.incident_id
    conversation.incident_id = incident_id
    conversation.locale = language or conversation.locale
    conversation.last_message_at = max(conversation.last_message_at, record.received_at)
    if conversation.status != "open":
        conversation.status = "open"  # the customer wrote again: it needs an answer
    session.add(conversation)
    await session.flush()
    insert = postgresql.insert if dialect_name(session) == "postgresql" else sqlite.insert
    await (await session.connection()).execute(
        insert(Message)
        .values(
            conversation_id=conversation.id,
            direction="in",
            channel=record.channel,
            external_id=record.external_id,
            text=record.text,
            intent=found.intent,
            language=language,
            reply_to=record.reply_to,
            author="",
            created_at=record.received_at,
        )
        .on_conflict_do_nothing(index_elements=["channel", "external_id"])
    )


async def _conversation_for(session: AsyncSession, record: InboundRecord) -> Conversation:
    statement = select(Conversation).where(
        Conversation.channel == record.channel, Conversation.conversation_key == record.conversation_key
    )
    conversation = (await session.exec(statement)).first()
    if conversation is None:
        conversation = Conversation(
            channel=record.channel,
            conversation_key=record.conversation_key,
            customer_handle=record.customer_handle,
            customer_name=record.customer_name,
            created_at=record.received_at,
            last_message_at=record.received_at,
        )
    elif record.customer_name and not conversation.customer_name:
        conversation.customer_name = record.customer_name
    return conversation


async def _incident_for(session: AsyncSession, record: InboundRecord, intent: str) -> int | None:
    """The broadcast it answers, else the open incident when the message is about the outage."""
    update_id = record.raw.get("update_id") if isinstance(record.raw, dict) else None
    if update_id is None and record.reply_to:
        statement = select(Delivery.update_id).where(
            Delivery.channel == record.channel, Delivery.provider_message_id == record.reply_to
        )
        if record.channel == "telegram":  # Telegram message ids are only unique within a chat
            statement = statement.where(Delivery.target == record.conversation_key)
        update_id = (await session.exec(statement.limit(1))).first()
    if update_id is not None:
        update = await session.get(IncidentUpdate, int(update_id))
        if update is not None:
            return update.incident_id
    if intent in OUTAGE_INTENTS:
        latest_open = (
            select(col(Incident.id))
            .where(Incident.status != "resolved")
            .order_by(col(Incident.id).desc())
            .limit(1)
        )
        return (await session.exec(latest_open)).first()
    return None


async def list_conversations(
    sessions: SessionFactory, *, open_only: bool = False, incident_id: int | None = None, limit: int = 100
) -> list[tuple[Conversation, Message | None]]:
    """Conversations, most recent first, each with its latest message."""
    await file_pending(sessions)
    async with sessions() as session:
        statement = select(Conversation).order_by(col(Conversation.last_message_at).desc()).limit(limit)
        if open_only:
            statement = statement.where(Conversation.status == "open")
        if incident_id is not None:
            statement = statement.where(Conversation.incident_id == incident_id)
        conversations = list(await session.exec(statement))
        result = []
        for conversation in conversations:
            latest = (
                await session.exec(
                    select(Message)
                    .where(Message.conversation_id == conversation.id)
                    .order_by(col(Message.created_at).desc(), col(Message.id).desc())
                    .limit(1)
                )
            ).first()
            result.append((conversation, latest))
        return result


async def conversation_with_messages(
    sessions: SessionFactory, conversation_id: int
) -> tuple[Conversation, list[Message]] | None:
    await file_pending(sessions)
    async with sessions() as session:
        conversation = await session.get(Conversation, conversation_id)
        if conversation is None:
            return None
        messages = list(
            await session.exec(
                select(Message)
                .where(Message.conversation_id == conversation_id)
                .order_by(col(Message.created_at), col(Message.id))
            )
        )
        return conversation, messages


def conversation_dict(conversation: Conversation, latest: Message | None = None) -> dict[str, object]:
    data: dict[str, object] = {
        "id": conversation.id,
        "channel": conversation.channel,
        "customer": conversation.customer_handle,
        "customer_name": conversation.customer_name,
        "locale": conversation.locale,
        "incident_id": conversation.incident_id,
        "status": conversation.status,
        "assignee": conversation.assignee,
        "labels": conversation.labels,
        "last_message_at": conversation.last_message_at.isoformat(),
    }
    if latest is not None:
        data["last_message"] = message_dict(latest)
    return data


def message_dict(message: Message) -> dict[str, object]:
    return {
        "id": message.id,
        "direction": message.direction,
        "text": message.text,
        "intent": message.intent,
        "language": message.language,
        "author": message.author,
        "created_at": message.created_at.isoformat(),
    }


async def run_filer(sessions: SessionFactory, stop: asyncio.Event, interval: float = 0.5) -> None:
    """File new messages until `stop` is set (runs inside `broadcaster serve`)."""
    while not stop.is_set():
        if await file_pending(sessions) == 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval)
