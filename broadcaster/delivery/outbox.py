"""The durable outbox (DESIGN §6): write deliveries in bulk, claim them with a lease, record results.

Claims are one atomic statement. PostgreSQL: `FOR UPDATE SKIP LOCKED` in the sub-select, so
several workers never take the same row. SQLite ignores SKIP LOCKED, so there the claim is a
single `UPDATE … WHERE id IN (SELECT … LIMIT n) RETURNING`, atomic because SQLite has one writer.
A row whose lease expired (its worker died) is claimable again; a live worker `renew`s the leases
it holds, so the lease can be short and a dead worker's rows are taken over within seconds.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Update,
    bindparam,
    case,
    func,
    insert,
    literal,
    select,
    text,
    update,
)
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from broadcaster.db import dialect_name, writing
from broadcaster.models import Delivery, Message, Subscriber, Subscription, utcnow

__all__ = [
    "ALERT",
    "ANSWER",
    "ANSWER_STATUS",
    "BROADCAST",
    "CAPTURED",
    "ClaimedDelivery",
    "DEAD",
    "DELIVERED",
    "FINAL",
    "DeliveryKey",
    "FAILED",
    "Outcome",
    "PENDING",
    "SENDING",
    "SENT",
    "TERMINAL",
    "answer_key",
    "broadcast_key_prefix",
    "claim",
    "counts_by_channel",
    "expire",
    "insert_audience",
    "insert_deliveries",
    "new_delivery",
    "next_due_at",
    "parse_idempotency_key",
    "record",
    "record_sync",
    "renew",
    "thread_ref",
    "withdrawal",
]

PENDING, SENDING, SENT, FAILED, DEAD = "pending", "sending", "sent", "failed", "dead"
#: What a row is (`Delivery.kind`): an update to a subscriber or a public post, an answer to a
#: customer in their thread, an alert to the staff.
BROADCAST, ANSWER, ALERT = "broadcast", "answer", "alert"
#: Handed to a capture-mode channel: stored in `captured_message`, nothing left the machine.
CAPTURED = "captured"
#: Final states: nothing more will happen to the row.
TERMINAL = (SENT, CAPTURED, FAILED, DEAD)
#: Final and successful: the message went out (SENT) or would have (CAPTURED).
DELIVERED = (SENT, CAPTURED)
#: States a row is never tried again from: delivered, or refused for good.
FINAL = (SENT, FAILED, DEAD, CAPTURED)

_REPLY_PREFIX, _ALERT_PREFIX = "reply:", "alert:"


def broadcast_key_prefix(update_id: int) -> str:
    """What the idempotency key of every broadcast row of `update_id` starts with."""
    return f"{update_id}:"


def answer_key(message_id: int) -> str:
    """The idempotency key of the answer that sends inbox message `message_id`."""
    return f"{_REPLY_PREFIX}{message_id}"


@dataclass(frozen=True, slots=True)
class DeliveryKey:
    """What an idempotency key names: a broadcast's update, an answer's message, or an alert's row."""

    update_id: int | None = None
    message_id: int | None = None
    alert_id: int | None = None


def parse_idempotency_key(key: str) -> DeliveryKey:
    """The inverse of `ClaimedDelivery.idempotency_key`; a key of another shape names nothing.

    >>> parse_idempotency_key("12:email:a@example.com")
    DeliveryKey(update_id=12, message_id=None, alert_id=None)
    """
    if key.startswith(_REPLY_PREFIX):
        number = key.removeprefix(_REPLY_PREFIX)
        return DeliveryKey(message_id=int(number)) if number.isdigit() else DeliveryKey()
    if key.startswith(_ALERT_PREFIX):
        number = key.removeprefix(_ALERT_PREFIX)
        return DeliveryKey(alert_id=int(number)) if number.isdigit() else DeliveryKey()
    number = key.partition(":")[0]
    return DeliveryKey(update_id=int(number)) if number.isdigit() else DeliveryKey()


@dataclass(frozen=True, slots=True)
class ClaimedDelivery:
    id: int
    kind: str  # BROADCAST, ANSWER or ALERT
    update_id: int | None
    channel: str
    target: str
    locale: str
    rendition_id: int | None
    subscription_id: int | None
    attempts: int
    claim_token: str
    retry_from: datetime  # the retry window counts from here: creation, or the last requeue
    message_id: int | None = None  # an answer to a customer (inbox message)
    payload: str = ""  # the RenderedMessage when there is no rendition
    reply: dict[str, str] | None = None  # channels.base.Reply fields of an answer

    @property
    def idempotency_key(self) -> str:
        """`<update>:<channel>:<target>` for a broadcast, `reply:<message>`, `alert:<delivery>`."""
        if self.kind == ANSWER and self.message_id is not None:
            return answer_key(self.message_id)
        if self.kind == ALERT or self.update_id is None:
            return f"{_ALERT_PREFIX}{self.id}"
        return f"{broadcast_key_prefix(self.update_id)}{self.channel}:{self.target}"


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to one claimed delivery; written back in bulk."""

    delivery: ClaimedDelivery
    status: str
    next_attempt_at: datetime | None = None
    error: str = ""
    provider_message_id: str = ""
    sent_at: datetime | None = None
    refund_attempt: bool = False  # a rate-limit wait does not use up a retry
    deactivate_subscription: bool = False


def new_delivery(
    *,
    kind: str,
    channel: str,
    target: str,
    locale: str,
    now: datetime,
    update_id: int | None = None,
    rendition_id: int | None = None,
    subscription_id: int | None = None,
    message_id: int | None = None,
    payload: str = "",
    reply: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A pending outbox row, every column given (bulk inserts need the same keys in every row).

    A broadcast names its update and rendition; an answer its message, payload and reply; an
    alert only its payload.
    """
    return {
        "kind": kind,
        "update_id": update_id,
        "channel": channel,
        "target": target,
        "locale": locale,
        "rendition_id": rendition_id,
        "subscription_id": subscription_id,
        "message_id": message_id,
        "payload": payload,
        "reply": reply or {},
        "status": PENDING,
        "attempts": 0,
        "next_attempt_at": now,
        "lease_until": None,
        "claim_token": "",
        "last_error": "",
        "provider_message_id": "",
        "created_at": now,
    }


async def insert_deliveries(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """Bulk-insert delivery rows (executemany) inside the caller's transaction."""
    if rows:
        await (await session.connection()).execute(insert(Delivery), list(rows))


async def insert_audience(
    session: AsyncSession,
    *,
    update_id: int,
    channel: str,
    conditions: Sequence[ColumnElement[bool]],
    renditions: Mapping[str, tuple[int, str]],
    fallback: tuple[int, str],
    now: datetime,
) -> int:
    """A pending broadcast row for every subscription meeting `conditions`, in one `INSERT … SELECT`
    (in subscription order); how many. Each row takes the (rendition id, locale) of its subscriber's
    stored locale in `renditions`, else `fallback` (a locale first seen since they were chosen)."""
    table = Delivery.__table__  # type: ignore[attr-defined]
    stored = col(Subscriber.locale)
    computed: dict[str, Any] = {
        "target": col(Subscription.address),
        "locale": case({k: v[1] for k, v in renditions.items()}, value=stored, else_=fallback[1]),
        "rendition_id": case({k: v[0] for k, v in renditions.items()}, value=stored, else_=fallback[0]),
        "subscription_id": col(Subscription.id),
    }
    row = new_delivery(kind=BROADCAST, channel=channel, target="", locale="", now=now, update_id=update_id)
    values = [computed.get(name, literal(value, table.c[name].type)) for name, value in row.items()]
    audience = (
        select(*values)
        .select_from(Subscription)
        .join(Subscriber, col(Subscriber.id) == col(Subscription.subscriber_id))
        .where(*conditions)
        .order_by(col(Subscription.id))
    )
    result = await (await session.connection()).execute(insert(table).from_select(list(row), audience))
    return int(result.rowcount)


# The rows are picked once, in a CTE (materialised on PostgreSQL): a LIMIT sub-select inside
# `IN (…)` may be run again per row by PostgreSQL's plan, and then claimed up to three times `limit`.
# Earliest due first (a broadcast's rows share one time: in id order). The `status IN` term is the
# partial index ix_delivery_due's own condition, so the pick walks that index in order and stops
# after `limit` rows: it reads the live rows it takes and those in flight, never the sent history
# (a row in flight was due when claimed, so it too is at or before :now).
_CLAIM_SQL = """
WITH picked AS {materialized} (
        SELECT id FROM delivery
         WHERE channel = :channel AND status IN ('pending', 'sending') AND next_attempt_at <= :now
           AND (status = 'pending' OR lease_until < :now)
         ORDER BY next_attempt_at, id
         LIMIT :limit {lock}
       )
UPDATE delivery
   SET status = 'sending', lease_until = :lease_until, attempts = attempts + 1, claim_token = :token
 WHERE id IN (SELECT id FROM picked)
   AND ((status = 'pending' AND next_attempt_at <= :now) OR (status = 'sending' AND lease_until < :now))
RETURNING id, kind, update_id, channel, target, locale, rendition_id, subscription_id, attempts,
          message_id, payload, reply, COALESCE(requeued_at, created_at) AS retry_from
"""


def _db_time(session: AsyncSession, when: datetime) -> datetime | str:
    # Raw SQL bypasses UTCDateTime: give SQLite the same naive-UTC text it stores.
    if dialect_name(session) == "sqlite":
        return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    return when


async def claim(
    session: AsyncSession, channel: str, limit: int, lease_seconds: float, now: datetime | None = None
) -> list[ClaimedDelivery]:
    """Atomically take up to `limit` due rows of `channel` and commit the claim."""
    now = now or utcnow()
    token = secrets.token_hex(8)
    postgresql = dialect_name(session) == "postgresql"
    lock, materialized = ("FOR UPDATE SKIP LOCKED", "MATERIALIZED") if postgresql else ("", "")
    async with writing(session):
        result = await (await session.connection()).execute(
            text(_CLAIM_SQL.format(lock=lock, materialized=materialized)),
            {
                "channel": channel,
                "now": _db_time(session, now),
                "lease_until": _db_time(session, now + timedelta(seconds=lease_seconds)),
                "token": token,
                "limit": limit,
            },
        )
        rows = result.all()
        await session.commit()
    return [
        ClaimedDelivery(
            id=r.id,
            kind=r.kind,
            update_id=r.update_id,
            channel=r.channel,
            target=r.target,
            locale=r.locale,
            rendition_id=r.rendition_id,
            subscription_id=r.subscription_id,
            attempts=r.attempts,
            claim_token=token,
            retry_from=_aware_utc(r.retry_from),
            message_id=r.message_id,
            payload=r.payload or "",
            reply=_json_object(r.reply) or None,
        )
        for r in sorted(rows, key=lambda r: r.id)
    ]


async def renew(
    session: AsyncSession,
    channel: str,
    tokens: Iterable[str],
    lease_seconds: float,
    now: datetime | None = None,
) -> int:
    """Extend the lease of `channel`'s rows still `sending` under `tokens`; how many were renewed.

    A row another worker claimed since (its token changed) or whose outcome is written is left alone.
    """
    now = now or utcnow()
    tokens = sorted(set(tokens))
    if not tokens:
        return 0
    statement = (
        update(Delivery)
        .where(col(Delivery.channel) == channel, col(Delivery.status) == SENDING)
        .where(col(Delivery.claim_token).in_(tokens))
        .values(lease_until=now + timedelta(seconds=lease_seconds))
    )
    async with writing(session):
        result = await (await session.connection()).execute(statement)
        await session.commit()
    return int(result.rowcount)


def _json_object(value: object) -> dict[str, str]:
    """A JSON column read through raw SQL: text on SQLite and asyncpg, already decoded elsewhere."""
    if isinstance(value, str):
        value = json.loads(value) if value else {}
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}


async def record(session: AsyncSession, outcomes: Iterable[Outcome]) -> int:
    """Write outcomes back; a row re-claimed by another worker (different token) is left alone."""
    outcomes = list(outcomes)
    if not outcomes:
        return 0
    async with writing(session):
        # One round trip to the database thread for every statement: the writer lock is held
        # for as short a time as possible (the inbox filer and the webhooks wait for it).
        await (await session.connection()).run_sync(record_sync, outcomes)
        await session.commit()
    return len(outcomes)


def record_sync(connection: Connection, outcomes: Sequence[Outcome]) -> int:
    """`record`'s statements in the caller's transaction (the caller commits, under the writer lock)."""
    now = utcnow()
    _hold_subscriptions_of_retries(connection, outcomes)
    deliveries = Delivery.__table__  # type: ignore[attr-defined]
    statement = (
        update(deliveries)
        .where(deliveries.c.id == bindparam("b_id"))
        .where(deliveries.c.claim_token == bindparam("b_token"))
        .values(
            status=bindparam("b_status"),
            next_attempt_at=bindparam("b_next"),
            last_error=bindparam("b_error"),
            provider_message_id=bindparam("b_provider_id"),
            sent_at=bindparam("b_sent_at"),
            attempts=bindparam("b_attempts"),
            lease_until=None,
        )
    )
    params = [
        {
            "b_id": o.delivery.id,
            "b_token": o.delivery.claim_token,
            "b_status": o.status,
            "b_next": o.next_attempt_at or now,
            "b_error": o.error[:1000],
            "b_provider_id": o.provider_message_id[:200],
            "b_sent_at": o.sent_at,
            "b_attempts": o.delivery.attempts - 1 if o.refund_attempt else o.delivery.attempts,
        }
        for o in outcomes
    ]
    connection.execute(statement, params)
    retried = [o.delivery.id for o in outcomes if o.status == PENDING and o.delivery.kind == BROADCAST]
    if retried:
        connection.execute(_withdrawal_of_ended(retried))
    _record_answers(connection, [o for o in outcomes if o.delivery.kind == ANSWER])
    to_deactivate = {o.delivery.subscription_id: o.error for o in outcomes if o.deactivate_subscription}
    subscriptions = Subscription.__table__  # type: ignore[attr-defined]
    for subscription_id, reason in to_deactivate.items():
        if subscription_id is not None:
            connection.execute(
                update(subscriptions)
                .where(subscriptions.c.id == subscription_id)
                .values(active=False, deactivated_reason=reason[:500], deactivated_at=now)
            )
            connection.execute(withdrawal([subscription_id], "the address was refused for good"))
    return len(outcomes)


ANSWER_STATUS = {SENT: "sent", CAPTURED: "captured", FAILED: "failed", DEAD: "failed", PENDING: "queued"}


def _record_answers(connection: Connection, outcomes: Sequence[Outcome]) -> None:
    """Show on each inbox answer whether it went out, and keep its provider id (echoes are ignored)."""
    if not outcomes:
        return
    table = Message.__table__  # type: ignore[attr-defined]
    connection.execute(
        update(table)
        .where(table.c.id == bindparam("b_id"))
        .values(delivery_status=bindparam("b_status"), delivery_error=bindparam("b_error")),
        [{"b_id": o.delivery.message_id, "b_status": ANSWER_STATUS[o.status], "b_error": o.error[:1000]}
         for o in outcomes],
    )  # fmt: skip
    sent = [o for o in outcomes if o.status in DELIVERED and o.provider_message_id]
    if not sent:
        return
    filed = table.alias("filed")
    echo = select(filed.c.id).where(
        filed.c.channel == bindparam("b_channel"), filed.c.external_id == bindparam("b_external")
    )
    # An echo of this answer filed first keeps the id; ours stays without one.
    connection.execute(
        update(table)
        .where(table.c.id == bindparam("b_id"), ~echo.exists())
        .values(external_id=bindparam("b_external")),
        [{"b_id": o.delivery.message_id, "b_channel": o.delivery.channel,
          "b_external": o.provider_message_id[:200]} for o in sent],
    )  # fmt: skip


async def expire(session: AsyncSession, channel: str, created_before: datetime) -> int:
    """Dead-letter `channel`'s waiting broadcasts and alerts whose retry window ended while the
    channel was paused (never tried since); how many. Answers keep waiting for a probe, which
    also shows the outcome on their inbox message."""
    statement = (
        update(Delivery)
        .where(col(Delivery.channel) == channel, col(Delivery.status) == PENDING)
        .where(func.coalesce(col(Delivery.requeued_at), col(Delivery.created_at)) < created_before)
        .where(col(Delivery.message_id).is_(None))
        .values(status=DEAD, last_error="gave up: retry window passed while the channel was paused")
    )
    async with writing(session):
        result = await (await session.connection()).execute(statement)
        await session.commit()
    return int(result.rowcount)


def withdrawal(subscription_ids: Iterable[int | None], reason: str) -> Update:
    """The statement that fails the broadcasts still waiting for these subscriptions, which have
    just ended: someone who unsubscribes (or whose address is refused for good) gets no retry of
    an update they were still due. Rows in flight (`sending`) finish their attempt; a retry it
    asks for is failed the same way when `record` writes it. Answers to their own messages, and
    alerts, are not broadcasts and are kept."""
    table = Delivery.__table__  # type: ignore[attr-defined]
    return (
        update(table)
        .where(
            table.c.subscription_id.in_([i for i in subscription_ids if i is not None]),
            table.c.status == PENDING,
            table.c.kind == BROADCAST,
        )
        .values(status=FAILED, last_error=f"not sent: {reason}"[:500], lease_until=None)
    )


def _hold_subscriptions_of_retries(connection: Connection, outcomes: Sequence[Outcome]) -> None:
    """On PostgreSQL, share-lock the subscriptions of the broadcasts about to be retried, first.

    An unsubscribe that commits while we write would otherwise be missed both ways: its withdrawal
    skips our row (still `sending`), and our check of the subscription reads it before that commit —
    the retry would go out later to someone who left. With the lock an unsubscribe either ends
    before we read (we fail the retry) or waits for us (its withdrawal then sees the row `pending`).
    Taken before any row of ours is written, in id order, so no two writers ever wait on each other.
    SQLite has a single writer: nothing to order.
    """
    if connection.dialect.name != "postgresql":
        return
    ids = sorted({
        o.delivery.subscription_id for o in outcomes
        if o.status == PENDING and o.delivery.kind == BROADCAST and o.delivery.subscription_id is not None
    })  # fmt: skip
    if ids:
        subscriptions = Subscription.__table__  # type: ignore[attr-defined]
        held = select(subscriptions.c.id).where(subscriptions.c.id.in_(ids)).order_by(subscriptions.c.id)
        connection.execute(held.with_for_update(read=True))


def _withdrawal_of_ended(delivery_ids: Sequence[int]) -> Update:
    """The statement that fails those of these broadcast retries whose subscription ended while
    their attempt was in flight (`withdrawal` leaves `sending` rows alone): the retry never leaves."""
    deliveries = Delivery.__table__  # type: ignore[attr-defined]
    subscriptions = Subscription.__table__  # type: ignore[attr-defined]
    ended_reason = (
        select(subscriptions.c.deactivated_reason)
        .where(subscriptions.c.id == deliveries.c.subscription_id, subscriptions.c.active.is_(False))
        .scalar_subquery()
    )
    return (
        update(deliveries)
        .where(
            deliveries.c.id.in_(delivery_ids),
            deliveries.c.status == PENDING,
            deliveries.c.kind == BROADCAST,
            ended_reason.is_not(None),
        )
        .values(
            status=FAILED,
            last_error=func.substr(literal("not sent: ") + ended_reason, 1, 500),
            lease_until=None,
        )
    )


async def counts_by_channel(
    session: AsyncSession, update_ids: Sequence[int], *conditions: ColumnElement[bool]
) -> dict[str, dict[str, int]]:
    """{channel: {status: n}} for the given updates (and their rows meeting every condition)."""
    statement = (
        select(col(Delivery.channel), col(Delivery.status), func.count())
        .where(col(Delivery.update_id).in_(update_ids), *conditions)
        .group_by(col(Delivery.channel), col(Delivery.status))
    )
    counts: dict[str, dict[str, int]] = {}
    for channel, status, n in (await (await session.connection()).execute(statement)).all():
        counts.setdefault(channel, {})[status] = n
    return counts


async def next_due_at(session: AsyncSession, update_ids: Sequence[int]) -> datetime | None:
    """When the earliest not-yet-final delivery of these updates becomes claimable."""
    statement = select(func.min(Delivery.next_attempt_at)).where(
        col(Delivery.update_id).in_(update_ids),
        col(Delivery.status).in_((PENDING, SENDING)),
    )
    value = (await (await session.connection()).execute(statement)).scalar()
    return None if value is None else _aware_utc(value)


def _aware_utc(value: datetime | str) -> datetime:
    """A time read through raw SQL or an aggregate, which bypass the column type (naive text on SQLite)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


_PREVIOUS_IN_THREAD = """
SELECT prev.status, prev.provider_message_id
  FROM delivery AS prev
  JOIN incident_update AS prev_update ON prev_update.id = prev.update_id
  JOIN incident_update AS this_update ON this_update.id = :update_id
 WHERE prev_update.incident_id = this_update.incident_id
   AND prev.channel = :channel AND prev.target = :target AND prev.update_id < :update_id
 ORDER BY prev.update_id DESC
 LIMIT 1
"""


async def thread_ref(session: AsyncSession, delivery: ClaimedDelivery) -> str | None:
    """What a follow-up continues from on its target: the previous update's provider id.

    "" when this is the incident's first message there (or the previous one never went out);
    None while the previous update is still on its way — the follow-up must wait for it.
    """
    params = {"update_id": delivery.update_id, "channel": delivery.channel, "target": delivery.target}
    row = (await (await session.connection()).execute(text(_PREVIOUS_IN_THREAD), params)).first()
    if row is None or row.status in (FAILED, DEAD):
        return ""
    return row.provider_message_id if row.status in DELIVERED else None
