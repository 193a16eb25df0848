"""The shared inbox: file every stored customer message into its conversation, once.

Webhooks and pollers only store (`inbound_message`) and acknowledge; filing happens here, after:
one conversation per customer per channel, the message deduplicated on (channel, external_id),
its intent and language detected, and the conversation linked to the incident it is about — the
broadcast it replies to, or, while an incident is open, a message whose intent is the outage.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, bindparam
from sqlalchemy import insert as sa_insert
from sqlalchemy import select as sa_select
from sqlalchemy import update as sql_update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection
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


@dataclass(slots=True)
class _Thread:
    """What a batch knows and changes of one conversation (plain data: ORM objects cost ~0.5 ms each)."""

    channel: str
    key: str
    handle: str
    name: str
    locale: str
    incident_id: int | None
    last_message_at: datetime
    id: int | None = None


async def file_pending(sessions: SessionFactory, *, limit: int = BATCH) -> int:
    """File stored messages not yet in the inbox, a batch at a time; returns how many were filed.

    One transaction per batch, with set-based statements: records read in one query, new
    conversations inserted and existing ones updated in one statement each, messages in one.
    """
    records_table = InboundRecord.__table__  # type: ignore[attr-defined]
    async with sessions() as session:
        connection = await session.connection()
        statement = (
            sa_select(records_table)
            .where(records_table.c.processed_at.is_(None))
            .order_by(records_table.c.id)
            .limit(limit)
        )
        if dialect_name(session) == "postgresql":  # several nodes: each record filed by one of them
            statement = statement.with_for_update(skip_locked=True)
        records = (await connection.execute(statement)).all()
        if not records:
            return 0
        threads = await _threads_for(connection, records)
        open_incident = await _latest_open_incident(session)
        messages = []
        for record in records:
            thread = threads[(record.channel, record.conversation_key)]
            found = classify(record.text)
            language = record.language.split("-")[0].lower() or found.language or thread.locale
            linked = await _incident_for(session, record) if _answers_a_broadcast(record) else None
            if linked is None and found.intent in OUTAGE_INTENTS:
                linked = open_incident
            thread.incident_id = linked or thread.incident_id
            thread.locale = language or thread.locale
            thread.last_message_at = max(thread.last_message_at, record.received_at)
            thread.name = thread.name or record.customer_name
            messages.append((thread, record, found.intent, language))
        await _save_threads(connection, list(threads.values()))
        insert = postgresql.insert if dialect_name(session) == "postgresql" else sqlite.insert
        rows = [
            {
                "conversation_id": thread.id,
                "direction": "in",
                "channel": record.channel,
                "external_id": record.external_id,
                "text": record.text,
                "intent": intent,
                "language": language,
                "reply_to": record.reply_to,
                "author": "",
                "created_at": record.received_at,
            }
            for thread, record, intent, language in messages
        ]
        await connection.execute(
            insert(Message).on_conflict_do_nothing(index_elements=["channel", "external_id"]), rows
        )
        await connection.execute(
            sql_update(records_table)
            .where(records_table.c.id.in_([r.id for r in records]))
            .values(processed_at=utcnow())
        )
        await session.commit()
    return len(records)


async def _threads_for(
    connection: AsyncConnection, records: Sequence[Row[Any]]
) -> dict[tuple[str, str], _Thread]:
    """The conversation of every record's customer: loaded in one query per channel, or new."""
    table = Conversation.__table__  # type: ignore[attr-defined]
    keys = {(r.channel, r.conversation_key) for r in records}
    threads: dict[tuple[str, str], _Thread] = {}
    for channel in {c for c, _ in keys}:
        wanted = [k for c, k in keys if c == channel]
        statement = sa_select(table).where(table.c.channel == channel, table.c.conversation_key.in_(wanted))
        for row in await connection.execute(statement):
            threads[(row.channel, row.conversation_key)] = _Thread(
                row.channel, row.conversation_key, row.customer_handle, row.customer_name, row.locale,
                row.incident_id, row.last_message_at, row.id,
            )  # fmt: skip
    for record in records:
        key = (record.channel, record.conversation_key)
        if key not in threads:
            threads[key] = _Thread(
                record.channel, record.conversation_key, record.customer_handle, record.customer_name, "",
                None, record.received_at,
            )  # fmt: skip
    return threads


async def _save_threads(connection: AsyncConnection, threads: list[_Thread]) -> None:
    """Insert the new conversations (learning their ids) and update the others, reopened."""
    table = Conversation.__table__  # type: ignore[attr-defined]
    fresh = [t for t in threads if t.id is None]
    if fresh:
        statement = sa_insert(table).returning(table.c.id, sort_by_parameter_order=True)
        values: list[dict[str, Any]] = [
            {
                "channel": t.channel,
                "conversation_key": t.key,
                "customer_handle": t.handle,
                "customer_name": t.name,
                "locale": t.locale,
                "incident_id": t.incident_id,
                "status": "open",
                "assignee": "",
                "labels": [],
                "created_at": t.last_message_at,
                "last_message_at": t.last_message_at,
            }
            for t in fresh
        ]
        ids = (await connection.execute(statement, values)).scalars().all()
        for thread, new_id in zip(fresh, ids, strict=True):
            thread.id = new_id
    known = [t for t in threads if t not in fresh]
    if known:
        await connection.execute(
            sql_update(table)
            .where(table.c.id == bindparam("b_id"))
            .values(
                status="open",  # the customer wrote again: it needs an answer
                locale=bindparam("b_locale"),
                incident_id=bindparam("b_incident"),
                last_message_at=bindparam("b_last"),
                customer_name=bindparam("b_name"),
            ),
            [{"b_id": t.id, "b_locale": t.locale, "b_incident": t.incident_id, "b_last": t.last_message_at,
              "b_name": t.name} for t in known],
        )  # fmt: skip


def _answers_a_broadcast(record: Row[Any]) -> bool:
    return bool(record.reply_to) or (isinstance(record.raw, dict) and "update_id" in record.raw)


async def _latest_open_incident(session: AsyncSession) -> int | None:
    latest_open = (
        select(col(Incident.id))
        .where(Incident.status != "resolved")
        .order_by(col(Incident.id).desc())
        .limit(1)
    )
    return (await session.exec(latest_open)).first()


async def _incident_for(session: AsyncSession, record: Row[Any]) -> int | None:
    """The incident whose broadcast this message answers (e-mail token, or the provider's reply id)."""
    update_id = record.raw.get("update_id") if isinstance(record.raw, dict) else None
    if update_id is None and record.reply_to:
        statement = select(Delivery.update_id).where(
            Delivery.channel == record.channel, Delivery.provider_message_id == record.reply_to
        )
        if record.channel == "telegram":  # Telegram message ids are only unique within a chat
            statement = statement.where(Delivery.target == record.conversation_key)
        update_id = (await session.exec(statement.limit(1))).first()
    if update_id is None:
        return None
    update = await session.get(IncidentUpdate, int(update_id))
    return update.incident_id if update is not None else None


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
