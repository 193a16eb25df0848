"""The shared inbox: file every stored customer message into its conversation, once.

Webhooks and pollers only store (`inbound_message`) and acknowledge; filing happens here, after:
one conversation per customer per channel, the message deduplicated on (channel, external_id),
its intent and language detected, and the conversation linked to the incident it is about — the
broadcast it replies to, or, while an incident is open, a message whose intent is the outage.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Row, bindparam
from sqlalchemy import insert as sa_insert
from sqlalchemy import select as sa_select
from sqlalchemy import update as sql_update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from broadcaster.answers import Answered
from broadcaster.db import SessionFactory, dialect_name, writing
from broadcaster.intent import classify
from broadcaster.models import (
    NOT_OPEN,
    Conversation,
    Delivery,
    InboundRecord,
    Incident,
    IncidentUpdate,
    Message,
    utcnow,
)
from broadcaster.spikes import SPIKE_INTENTS

if TYPE_CHECKING:
    from broadcaster.outbox import ClaimedDelivery
    from broadcaster.status_bot import StatusBot

log = logging.getLogger(__name__)

OUTAGE_INTENTS = frozenset(SPIKE_INTENTS)
BATCH = 500


@dataclass(slots=True)
class Thread:
    """What a batch knows and changes of one conversation (plain data: ORM objects cost ~0.5 ms each)."""

    channel: str
    key: str
    handle: str
    name: str
    locale: str
    incident_id: int | None
    last_message_at: datetime
    id: int | None = None
    bot_answered_state: int | None = None
    handed_off: bool = False
    status: str = "open"


async def file_pending(sessions: SessionFactory, *, bot: StatusBot | None = None, limit: int = BATCH) -> int:
    """File stored messages not yet in the inbox, a batch at a time; returns how many were filed.

    One transaction per batch, with set-based statements: records read in one query, new
    conversations inserted and existing ones updated in one statement each, messages in one.
    With a `bot`, its answers to the batch are queued in the same transaction; the dispatcher
    is woken for them once it commits.
    """
    records_table = InboundRecord.__table__  # type: ignore[attr-defined]
    async with sessions() as session:
        connection = await session.connection()
        filed = Message.__table__.alias("filed")  # type: ignore[attr-defined]
        statement = (
            # `filed_id`: a message with this provider id exists — our own answer, echoed back.
            sa_select(records_table, filed.c.id.label("filed_id"))
            .outerjoin(
                filed,
                (filed.c.channel == records_table.c.channel)
                & (filed.c.external_id == records_table.c.external_id),
            )
            .where(records_table.c.processed_at.is_(None))
            .order_by(records_table.c.id)
            .limit(limit)
        )
        if dialect_name(session) == "postgresql":  # several nodes: each record filed by one of them
            statement = statement.with_for_update(of=records_table, skip_locked=True)
        records = (await connection.execute(statement)).all()
        if not records:
            return 0
        threads = await _threads_for(connection, records)
        open_incident = await _latest_open_incident(session)
        messages = []
        for record in records:
            if record.filed_id is not None:
                continue  # our own answer, echoed back by the provider
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
            thread.status = "open"  # the customer wrote: it needs an answer, unless the bot gives it
            messages.append((thread, record, found, language))
        # Reading and classifying needed no lock; writing does (one SQLite writer at a time).
        async with writing(session):
            await _save_threads(connection, list(threads.values()))
            insert = postgresql.insert if dialect_name(session) == "postgresql" else sqlite.insert
            rows = [
                {
                    "conversation_id": thread.id,
                    "direction": "in",
                    "channel": record.channel,
                    "external_id": record.external_id,
                    "text": record.text,
                    "intent": found.intent,
                    "language": language,
                    "reply_to": record.reply_to,
                    "author": "",
                    "delivery_status": "",
                    "delivery_error": "",
                    "created_at": record.received_at,
                }
                for thread, record, found, language in messages
            ]
            if rows:
                await connection.execute(
                    insert(Message).on_conflict_do_nothing(index_elements=["channel", "external_id"]), rows
                )
            claimed: list[ClaimedDelivery] = []
            if bot is not None and messages:
                filed = [(thread, found) for thread, _r, found, _l in messages]
                claimed = await bot.answer(session, filed, replying_to=_answered(messages))
                await _save_bot_state(connection, {id(t): t for t, *_ in messages}.values())
            await connection.execute(
                sql_update(records_table)
                .where(records_table.c.id.in_([r.id for r in records]))
                .values(processed_at=utcnow())
            )
            await session.commit()
    if bot is not None:
        bot.send(claimed)
    return len(records)


def _answered(messages: Sequence[tuple[Thread, Row[Any], object, str]]) -> dict[int, Answered]:
    """Each conversation's latest message of this batch: what an answer to it replies to."""
    latest: dict[int, Answered] = {}
    for thread, record, _found, _language in messages:  # in the order they were stored
        assert thread.id is not None
        raw = record.raw if record.channel == "email" and isinstance(record.raw, dict) else {}
        latest[thread.id] = Answered(record.channel, record.conversation_key, thread.handle,
                                     record.external_id, raw)  # fmt: skip
    return latest


async def _save_bot_state(connection: AsyncConnection, threads: Iterable[Thread]) -> None:
    table = Conversation.__table__  # type: ignore[attr-defined]
    await connection.execute(
        sql_update(table)
        .where(table.c.id == bindparam("b_id"))
        .values(status=bindparam("b_status"), locale=bindparam("b_locale"),
                bot_answered_state=bindparam("b_state")),
        [{"b_id": t.id, "b_status": t.status, "b_locale": t.locale, "b_state": t.bot_answered_state}
         for t in threads],
    )  # fmt: skip


async def _threads_for(
    connection: AsyncConnection, records: Sequence[Row[Any]]
) -> dict[tuple[str, str], Thread]:
    """The conversation of every record's customer: loaded in one query per channel, or new."""
    table = Conversation.__table__  # type: ignore[attr-defined]
    keys = {(r.channel, r.conversation_key) for r in records}
    threads: dict[tuple[str, str], Thread] = {}
    for channel in {c for c, _ in keys}:
        wanted = [k for c, k in keys if c == channel]
        statement = sa_select(table).where(table.c.channel == channel, table.c.conversation_key.in_(wanted))
        for row in await connection.execute(statement):
            threads[(row.channel, row.conversation_key)] = Thread(
                row.channel, row.conversation_key, row.customer_handle, row.customer_name, row.locale,
                row.incident_id, row.last_message_at, row.id, row.bot_answered_state, row.handed_off,
                row.status,
            )  # fmt: skip
    for record in records:
        key = (record.channel, record.conversation_key)
        if key not in threads:
            threads[key] = Thread(
                record.channel, record.conversation_key, record.customer_handle, record.customer_name, "",
                None, record.received_at,
            )  # fmt: skip
    return threads


async def _save_threads(connection: AsyncConnection, threads: list[Thread]) -> None:
    """Insert the new conversations (learning their ids) and update the others, reopened."""
    table = Conversation.__table__  # type: ignore[attr-defined]
    fresh = [t for t in threads if t.id is None]
    known = [t for t in threads if t.id is not None]
    if fresh:
        # RETURNING the natural key, not the parameter order: SQLAlchemy then sends one
        # multi-row INSERT instead of one statement per conversation.
        statement = sa_insert(table).returning(table.c.id, table.c.channel, table.c.conversation_key)
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
                "bot_answered_state": None,
                "handed_off": False,
                "created_at": t.last_message_at,
                "last_message_at": t.last_message_at,
            }
            for t in fresh
        ]
        ids = {
            (row.channel, row.conversation_key): row.id for row in await connection.execute(statement, values)
        }
        for thread in fresh:
            thread.id = ids[(thread.channel, thread.key)]
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
    return bool(record.reply_to) or _email_update_id(record) is not None


def _email_update_id(record: Row[Any]) -> object:
    """The update an e-mail reply answers, from its reply+<update>.<token> address.

    Only e-mail records carry it: other channels' raw payloads are the provider's (Telegram's
    own `update_id` is no update of ours).
    """
    return record.raw.get("update_id") if record.channel == "email" and isinstance(record.raw, dict) else None


async def _latest_open_incident(session: AsyncSession) -> int | None:
    latest_open = (
        select(col(Incident.id))
        .where(col(Incident.status).not_in(NOT_OPEN))
        .order_by(col(Incident.id).desc())
        .limit(1)
    )
    return (await session.exec(latest_open)).first()


async def _incident_for(session: AsyncSession, record: Row[Any]) -> int | None:
    """The incident whose broadcast this message answers (e-mail token, or the provider's reply id)."""
    update_id = _email_update_id(record)
    if update_id is None and record.reply_to:
        statement = select(Delivery.update_id).where(
            Delivery.channel == record.channel, Delivery.provider_message_id == record.reply_to
        )
        if record.channel == "telegram":  # Telegram message ids are only unique within a chat
            statement = statement.where(Delivery.target == record.conversation_key)
        update_id = (await session.exec(statement.limit(1))).first()
    if update_id is None:
        return None
    update = await session.get(IncidentUpdate, int(str(update_id)))
    return update.incident_id if update is not None else None


async def conversation_with_messages(
    sessions: SessionFactory, conversation_id: int
) -> tuple[Conversation, list[Message]] | None:
    async with sessions() as session:
        conversation = await session.get(Conversation, conversation_id)
        if conversation is None:
            return None
        messages = list(
            await session.exec(
                select(Message)
                .where(Message.conversation_id == conversation_id)
                .order_by(col(Message.id))  # the order they reached us: provider clocks tick in seconds
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
        "handed_off": conversation.handed_off,
        "last_message_at": conversation.last_message_at.isoformat(),
    }
    if latest is not None:
        data["last_message"] = message_dict(latest)
    return data


def message_dict(message: Message) -> dict[str, object]:
    """A message as JSON; an outgoing one says whether it went out and, if not, why."""
    data: dict[str, object] = {
        "id": message.id,
        "channel": message.channel,
        "direction": message.direction,
        "text": message.text,
        "intent": message.intent,
        "language": message.language,
        "author": message.author,
        "created_at": message.created_at.isoformat(),
    }
    if message.direction == "out":
        data |= {"delivery_status": message.delivery_status, "delivery_error": message.delivery_error}
    return data


class Filer:
    """Files new messages inside `broadcaster serve`: at once when `nudge`d, else every `interval`.

    Webhooks, pollers and the e-mail listener nudge it after they commit, so the status bot's
    answer is queued within milliseconds; the interval catches messages stored by other nodes.
    `after_batch` runs after each filed batch (spike detection).
    """

    def __init__(
        self,
        sessions: SessionFactory,
        *,
        bot: StatusBot | None = None,
        after_batch: Callable[[], Awaitable[object]] | None = None,
        interval: float = 0.5,
    ) -> None:
        self._sessions = sessions
        self._bot = bot
        self._after_batch = after_batch
        self._interval = interval
        self._nudged = asyncio.Event()

    def nudge(self) -> None:
        self._nudged.set()

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self._nudged.clear()
            try:
                filed = await file_pending(self._sessions, bot=self._bot)
                if filed and self._after_batch is not None:
                    await self._after_batch()
            except Exception:  # the database went away, a bug: log it, keep the inbox alive, retry
                log.exception("inbox filing failed; retrying in %.1f s", self._interval)
                filed = 0
            if filed == 0:
                waiters = [asyncio.ensure_future(self._nudged.wait()), asyncio.ensure_future(stop.wait())]
                await asyncio.wait(waiters, timeout=self._interval, return_when="FIRST_COMPLETED")
                for waiter in waiters:
                    waiter.cancel()
