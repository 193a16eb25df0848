"""The shared inbox: file every stored customer message into its conversation, once.

Webhooks and pollers only store (`inbound_message`) and acknowledge; filing happens here, after:
one conversation per customer per channel, the message deduplicated on (channel, external_id),
its intent and language detected, and the conversation linked to the incident it is about — the
broadcast it replies to, or, while an incident is open, a message whose intent is the outage.

An e-mail conversation's address is its subscription's, never a message's From: a reply token
travels in every broadcast's Reply-To, so a forwarded e-mail leaks it. A message whose From is
another address is filed `unverified`, machine-made mail `automated`; neither acts nor is answered
by the bot, and neither changes where answers go or whom they greet.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

from sqlalchemy import Connection, Row, Select, bindparam, text
from sqlalchemy import insert as sa_insert
from sqlalchemy import select as sa_select
from sqlalchemy import update as sql_update
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col, select

from broadcaster.db import SessionFactory, upsert_insert, writing
from broadcaster.delivery.outbox import ClaimedDelivery
from broadcaster.inbox.answers import Answered, HandOff, queue_answers_sync
from broadcaster.inbox.intent import Classification, classify
from broadcaster.inbox.reply_templates import latest_open_incident
from broadcaster.inbox.spikes import SPIKE_INTENTS
from broadcaster.inbox.thread import Thread
from broadcaster.models import (
    AUTOMATED,
    UNVERIFIED,
    VERIFIED,
    Conversation,
    Delivery,
    InboundRecord,
    IncidentUpdate,
    Message,
    Subscription,
    utcnow,
)

if TYPE_CHECKING:
    from broadcaster.inbox.bot import StatusBot

__all__ = [
    "BATCH",
    "Batch",
    "Filing",
    "INBOX_LOCK_SPACE",
    "NOTHING",
    "OUTAGE_INTENTS",
    "Reading",
    "conversation_dict",
    "conversation_with_messages",
    "file_batch",
    "file_pending",
    "file_pending_batch",
    "message_dict",
    "read_batch",
    "write_batch",
]

log = logging.getLogger(__name__)

OUTAGE_INTENTS = frozenset(SPIKE_INTENTS)
#: The advisory lock space of conversations being filed ("INBX"; the key is a hash, `_conversation_lock`).
INBOX_LOCK_SPACE = 0x494E4258
BATCH = 500


@dataclass(frozen=True, slots=True)
class Batch:
    """What one filing batch did: records filed, answers to hand over, and whether the spike
    detector should look (outage reports filed while no incident is open)."""

    filed: int
    claimed: list[ClaimedDelivery] = field(default_factory=list)
    unexplained_reports: bool = False


NOTHING = Batch(0)


class Filing(NamedTuple):
    """One stored record on its way into its conversation."""

    thread: Thread
    record: Row[Any]
    found: Classification
    language: str
    trust: str


async def file_pending(
    sessions: SessionFactory,
    *,
    bot: StatusBot | None = None,
    hand_off: HandOff | None = None,
    limit: int = BATCH,
) -> int:
    """File stored messages not yet in the inbox, a batch at a time; returns how many were filed.

    The batch (`file_batch`) runs as one synchronous call in the connection's thread. With a
    `bot`, its answers are queued in the same transaction (claimed for `hand_off`'s workers).
    """
    return (await file_pending_batch(sessions, bot=bot, hand_off=hand_off, limit=limit)).filed


async def file_pending_batch(
    sessions: SessionFactory,
    *,
    bot: StatusBot | None = None,
    hand_off: HandOff | None = None,
    limit: int = BATCH,
) -> Batch:
    """`file_pending`, returning the whole `Batch` (its `claimed` answers are the caller's to hand over)."""
    async with sessions() as session:
        engine = session.bind
        assert isinstance(engine, AsyncEngine), "the session factory is bound to one engine"
        # On SQLite the writer lock is held for the whole call: the batch cannot wait for it
        # half-way without blocking the event loop. (`broadcaster serve` files in a thread instead.)
        async with writing(session), engine.connect() as connection:
            return await connection.run_sync(
                lambda sync: file_batch(sync, bot=bot, hand_off=hand_off, limit=limit)
            )


@dataclass(slots=True)
class Reading:
    """A batch read and classified, not written yet (`read_batch` → `write_batch`)."""

    records: Sequence[Row[Any]]
    threads: dict[tuple[str, str], Thread]
    messages: list[Filing]
    open_incident: int | None
    reports: bool  # outage reports among the messages


def file_batch(
    connection: Connection,
    *,
    bot: StatusBot | None = None,
    hand_off: HandOff | None = None,
    limit: int = BATCH,
) -> Batch:
    """File one batch in the connection's transaction and commit it; the caller hands over the answers."""
    reading = read_batch(connection, limit)
    return NOTHING if reading is None else write_batch(connection, reading, bot, hand_off)


def read_batch(connection: Connection, limit: int = BATCH) -> Reading | None:
    """Read and classify up to `limit` stored records not filed yet (None: there are none).

    Set-based: records read in one query, their conversations in one per channel.
    """
    statement = _pending_records(limit, connection.dialect.name == "postgresql")
    records = connection.execute(statement).all()
    if not records:
        connection.rollback()
        return None
    if connection.dialect.name == "postgresql":
        _lock_conversations(connection, records)
    threads = _threads_for(connection, records)
    subscribed = _subscribed_addresses(connection, records)
    open_incident = latest_open_incident(connection)
    messages = []
    reports = False
    for thread in threads.values():
        if thread.channel == "email" and thread.id is None:  # named by its first verified message
            thread.handle, thread.name = subscribed.get(thread.key, ""), ""
        elif thread.channel == "email" and thread.key in subscribed:
            thread.handle = subscribed[thread.key]
    for record in records:
        if record.filed_id is not None:
            continue  # our own answer, echoed back by the provider
        thread = threads[(record.channel, record.conversation_key)]
        trust = _trust(record, subscribed)
        found = classify(record.text)
        if trust == AUTOMATED:  # it asks nothing, reports no outage, needs no answer
            found = dataclasses.replace(found, intent="other", command="", argument="")
        else:
            thread.status = "open"  # the customer wrote: it needs an answer, unless the bot gives it
        language = record.language.split("-")[0].lower() or found.language or thread.locale
        linked = _incident_for(connection, record) if _answers_a_broadcast(record) else None
        if found.intent in OUTAGE_INTENTS:
            reports = True
            if linked is None:
                linked = open_incident
        thread.incident_id = linked or thread.incident_id
        thread.locale = language or thread.locale
        thread.last_message_at = max(thread.last_message_at, record.created_at)
        if trust == VERIFIED:
            thread.name = thread.name or record.customer_name
        messages.append(Filing(thread, record, found, language, trust))
    return Reading(records, threads, messages, open_incident, reports)


def _lock_conversations(connection: Connection, records: Sequence[Row[Any]]) -> None:
    """Hold each record's conversation until the transaction ends (PostgreSQL, several nodes).

    SKIP LOCKED gives two nodes different records, but two of one customer's would be filed side
    by side: both nodes would read the conversation before the other wrote it, so the bot would
    answer one question twice, or a new customer's conversation be inserted twice. A transaction
    advisory lock per conversation makes the second node wait and then read what the first wrote.
    Taken in one order (sorted keys), so two batches never wait for each other in a circle.
    """
    keys = sorted({_conversation_lock(r.channel, r.conversation_key) for r in records})
    connection.execute(_LOCK_CONVERSATIONS, {"space": INBOX_LOCK_SPACE, "keys": keys})


_LOCK_CONVERSATIONS = text(
    "SELECT pg_advisory_xact_lock(:space, key) FROM unnest(CAST(:keys AS integer[])) AS key"
)


def _conversation_lock(channel: str, key: str) -> int:
    """A conversation's advisory lock key: a stable signed 32-bit hash (a collision only waits)."""
    value = zlib.crc32(f"{channel}\x00{key}".encode())
    return value - (1 << 32) if value >= 1 << 31 else value


def _subscribed_addresses(connection: Connection, records: Sequence[Row[Any]]) -> dict[str, str]:
    """{reply token: the e-mail address of its subscription} for the batch's e-mail records."""
    tokens = {r.conversation_key for r in records if r.channel == "email"}
    if not tokens:
        return {}
    table = Subscription.__table__  # type: ignore[attr-defined]
    statement = sa_select(table.c.reply_token, table.c.address).where(
        table.c.channel == "email", table.c.reply_token.in_(tokens)
    )
    return {token: address for token, address in connection.execute(statement)}


def _trust(record: Row[Any], subscribed: dict[str, str]) -> str:
    """`VERIFIED`, `UNVERIFIED` or `AUTOMATED` (see `Message.trust`)."""
    if record.channel != "email":
        return VERIFIED  # the provider authenticates the account
    raw = record.raw if isinstance(record.raw, dict) else {}
    if raw.get("automated"):
        return AUTOMATED
    if raw.get("authenticated") is False:  # the DMARC-checking MTA in front found the From forged
        return UNVERIFIED
    address = subscribed.get(record.conversation_key, "")
    sender = str(raw.get("from") or record.customer_handle)
    return VERIFIED if address and sender.strip().lower() == address.strip().lower() else UNVERIFIED


@functools.cache
def _pending_records(limit: int, postgres: bool) -> Select[Any]:
    """The records not filed yet, oldest first (built once: an alias costs more than the query)."""
    records_table = InboundRecord.__table__  # type: ignore[attr-defined]
    filed_table = Message.__table__.alias("filed")  # type: ignore[attr-defined]
    statement = (
        # `filed_id`: a message with this provider id exists — our own answer, echoed back.
        sa_select(records_table, filed_table.c.id.label("filed_id"))
        .outerjoin(
            filed_table,
            (filed_table.c.channel == records_table.c.channel)
            & (filed_table.c.external_id == records_table.c.external_id),
        )
        .where(records_table.c.processed_at.is_(None))
        .order_by(records_table.c.id)
        .limit(limit)
    )
    if postgres:  # several nodes: each record filed by one of them
        statement = statement.with_for_update(of=records_table, skip_locked=True)
    return statement


def write_batch(
    connection: Connection, reading: Reading, bot: StatusBot | None = None, hand_off: HandOff | None = None
) -> Batch:
    """Write a batch read by `read_batch` and commit: new conversations inserted in one statement,
    messages in one, the bot's answers queued (claimed for `hand_off`'s workers), every
    conversation updated in one. Hold the writer lock around it (`db.writing`, `db.sqlite_writer`)."""
    records, threads, messages = reading.records, reading.threads, reading.messages
    _insert_threads(connection, [t for t in threads.values() if t.id is None])
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
            "trust": trust,
            "created_at": record.created_at,
            "sent_at": record.received_at,
        }
        for thread, record, found, language, trust in messages
    ]
    if rows:
        insert = upsert_insert(connection.dialect.name)
        connection.execute(
            insert(Message).on_conflict_do_nothing(index_elements=["channel", "external_id"]), rows
        )
    claimed: list[ClaimedDelivery] = []
    trusted = [filing for filing in messages if filing.trust == VERIFIED]
    if bot is not None and trusted:
        filed = [(filing.thread, filing.found) for filing in trusted]
        answers = bot.answers_to(connection, filed, latest_open=reading.open_incident)
        if answers:
            replying_to = _answered(trusted)
            claimed = queue_answers_sync(
                connection, answers, hand_off=hand_off, replying_to=replying_to
            ).claimed
    _update_threads(connection, list(threads.values()))
    records_table = InboundRecord.__table__  # type: ignore[attr-defined]
    connection.execute(
        sql_update(records_table)
        .where(records_table.c.id.in_([r.id for r in records]))
        .values(processed_at=utcnow())
    )
    connection.commit()
    return Batch(len(records), claimed, reading.reports and reading.open_incident is None)


def _answered(messages: Sequence[Filing]) -> dict[int, Answered]:
    """Each conversation's latest message of this batch: what an answer to it replies to."""
    latest: dict[int, Answered] = {}
    for thread, record, *_ in messages:  # in the order they were stored
        assert thread.id is not None
        raw = record.raw if record.channel == "email" and isinstance(record.raw, dict) else {}
        latest[thread.id] = Answered(record.channel, record.conversation_key, thread.handle,
                                     record.external_id, raw)  # fmt: skip
    return latest


def _threads_for(connection: Connection, records: Sequence[Row[Any]]) -> dict[tuple[str, str], Thread]:
    """The conversation of every record's customer: loaded in one query per channel, or new."""
    table = Conversation.__table__  # type: ignore[attr-defined]
    keys = {(r.channel, r.conversation_key) for r in records}
    threads: dict[tuple[str, str], Thread] = {}
    for channel in {c for c, _ in keys}:
        wanted = [k for c, k in keys if c == channel]
        statement = sa_select(table).where(table.c.channel == channel, table.c.conversation_key.in_(wanted))
        for row in connection.execute(statement):
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
                None, record.created_at,
            )  # fmt: skip
    return threads


def _insert_threads(connection: Connection, fresh: list[Thread]) -> None:
    """Insert the new conversations, learning their ids."""
    if not fresh:
        return
    table = Conversation.__table__  # type: ignore[attr-defined]
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
    ids = {(row.channel, row.conversation_key): row.id for row in connection.execute(statement, values)}
    for thread in fresh:
        thread.id = ids[(thread.channel, thread.key)]


def _update_threads(connection: Connection, threads: list[Thread]) -> None:
    """Write what the batch changed of every conversation (and the bot's state), in one statement."""
    table = Conversation.__table__  # type: ignore[attr-defined]
    connection.execute(
        sql_update(table)
        .where(table.c.id == bindparam("b_id"))
        .values(
            status=bindparam("b_status"),
            locale=bindparam("b_locale"),
            incident_id=bindparam("b_incident"),
            last_message_at=bindparam("b_last"),
            customer_handle=bindparam("b_handle"),
            customer_name=bindparam("b_name"),
            bot_answered_state=bindparam("b_state"),
        ),
        [{"b_id": t.id, "b_status": t.status, "b_locale": t.locale, "b_incident": t.incident_id,
          "b_last": t.last_message_at, "b_handle": t.handle, "b_name": t.name,
          "b_state": t.bot_answered_state} for t in threads],
    )  # fmt: skip


def _answers_a_broadcast(record: Row[Any]) -> bool:
    return bool(record.reply_to) or _email_update_id(record) is not None


def _email_update_id(record: Row[Any]) -> object:
    """The update an e-mail reply answers, from its reply+<update>.<token> address.

    Only e-mail records carry it: other channels' raw payloads are the provider's (Telegram's
    own `update_id` is no update of ours).
    """
    return record.raw.get("update_id") if record.channel == "email" and isinstance(record.raw, dict) else None


def _incident_for(connection: Connection, record: Row[Any]) -> int | None:
    """The incident whose broadcast this message answers (e-mail token, or the provider's reply id)."""
    update_id = _email_update_id(record)
    if update_id is None and record.reply_to:
        deliveries = Delivery.__table__  # type: ignore[attr-defined]
        statement = sa_select(deliveries.c.update_id).where(
            deliveries.c.channel == record.channel, deliveries.c.provider_message_id == record.reply_to
        )
        if record.channel == "telegram":  # Telegram message ids are only unique within a chat
            statement = statement.where(deliveries.c.target == record.conversation_key)
        update_id = connection.execute(statement.limit(1)).scalar()
    if update_id is None:
        return None
    updates = IncidentUpdate.__table__  # type: ignore[attr-defined]
    return connection.execute(
        sa_select(updates.c.incident_id).where(updates.c.id == int(str(update_id)))
    ).scalar()


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
    """A message as JSON; an outgoing one says whether it went out and, if not, why; an incoming one
    when the sender's clock says it was sent."""
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
    if message.direction == "in":
        data["trust"] = message.trust or VERIFIED  # filed before trust was recorded: as it was treated
    if message.direction == "out":
        data |= {"delivery_status": message.delivery_status, "delivery_error": message.delivery_error}
    else:  # `created_at` is when it reached us; `sent_at` what the sender's clock said
        data["sent_at"] = message.sent_at.isoformat() if message.sent_at else None
    return data
