"""Customer messages coming in: store them once, and remember where each poller stopped.

Webhooks and pollers both end here. (channel, external_id) is unique, so a webhook delivered
twice or a poll repeated after a crash stores one message.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection
from sqlmodel import col, select

from broadcaster.config import DispatchSettings
from broadcaster.db import LoopWriter, SessionFactory, upsert_insert, writing
from broadcaster.drill.reply import DRILL_UPDATE_ID, drill_address_exists, take_drill_replies
from broadcaster.election import DeploymentLock
from broadcaster.inbox.intake import normalised
from broadcaster.logs import log_event
from broadcaster.models import Delivery, InboundRecord, Message, PollCursor, Subscription, utcnow
from channels.base import DeliveryError, InboundMessage, RateLimited, Rejected, Unauthorized
from channels.email.parse import ReplyAddress
from channels.pacing import bounded_pause

__all__ = [
    "GroupCommit",
    "Poll",
    "Poller",
    "UNAUTHORIZED_PAUSE_SECONDS",
    "insert_inbound",
    "load_cursor",
    "reply_address_exists",
    "reply_address_for",
    "save_cursor",
    "store_inbound",
]

log = logging.getLogger(__name__)

UNAUTHORIZED_PAUSE_SECONDS = 60
Poll = Callable[[str], Awaitable[tuple[list[InboundMessage], str]]]


async def store_inbound(
    sessions: SessionFactory, messages: Sequence[InboundMessage], *, now: datetime | None = None
) -> int:
    """Insert new messages, ignoring ones already stored; return how many were new."""
    return len(await insert_inbound(sessions, messages, now=now))


async def insert_inbound(
    sessions: SessionFactory,
    messages: Sequence[InboundMessage],
    writer: LoopWriter | None = None,
    *,
    now: datetime | None = None,
) -> set[tuple[str, str]]:
    """Insert new messages in one transaction; return the (channel, external_id) of those that were new.

    Each is `normalised` first (the keys returned are the normalised ones). They are dated by
    our clock (`now`, default the current time): the inbox's windows count by it, never by the
    sender's `received_at`, which is kept for display. With a `writer`, as one synchronous call
    on the loop (SQLite; see `LoopWriter`). A reply to a drill e-mail is recorded on its drill
    run instead (`broadcaster.drill.reply`): it is no customer message.
    """
    messages = await take_drill_replies(sessions, messages)
    if not messages:
        return set()
    messages = [normalised(m) for m in messages]
    received = now or utcnow()
    rows = [
        {
            **_fitted(m),
            "text": m.text,
            "received_at": m.received_at,
            "raw": dict(m.raw),
            "created_at": received,
        }
        for m in messages
    ]

    async def through_session() -> set[tuple[str, str]]:
        async with sessions() as session, writing(session):
            inserted = await (await session.connection()).run_sync(_insert_records, rows)
            await session.commit()
        return inserted

    if writer is None:
        return await through_session()
    return await writer.run(lambda connection: _insert_records(connection, rows), through_session)


# PostgreSQL refuses a value longer than its varchar column, and with it the whole batch: one
# customer's 300-character name would keep every message of a webhook call or poll out.
_LIMITED = {
    name: InboundRecord.__table__.c[name].type.length  # type: ignore[attr-defined]
    for name in (
        "channel",
        "external_id",
        "conversation_key",
        "customer_handle",
        "customer_name",
        "language",
        "reply_to",
    )
}


def _fitted(message: InboundMessage) -> dict[str, str]:
    """The message's short fields, each cut to its column's length (the raw payload keeps them whole)."""
    fitted: dict[str, str] = {}
    for name, limit in _LIMITED.items():
        value = getattr(message, name)
        if len(value) > limit:
            log.warning(
                "%s message %.60s: %s cut to %d characters", message.channel, message.external_id, name, limit
            )
            value = value[:limit]
        fitted[name] = value
    return fitted


def _insert_records(connection: Connection, rows: list[dict[str, Any]]) -> set[tuple[str, str]]:
    insert = upsert_insert(connection.dialect.name)
    statement = insert(InboundRecord).on_conflict_do_nothing(index_elements=["channel", "external_id"])
    returning = statement.returning(col(InboundRecord.channel), col(InboundRecord.external_id))
    return {(channel, external_id) for channel, external_id in connection.execute(returning, rows).all()}


class GroupCommit:
    """Stores messages from many concurrent webhook calls in a few transactions.

    A caller appends its messages and waits for the write lock; whoever holds it writes everything
    waiting so far in one transaction and answers every caller in that batch. Each call still
    returns only after its own messages are committed. (One writer also spares SQLite's busy-wait.)
    When the batch's transaction fails, each caller's messages are written again on their own:
    a message the database refuses fails only its own caller.
    """

    def __init__(self, sessions: SessionFactory, on_stored: Callable[[], None] | None = None) -> None:
        self._sessions = sessions
        self._writer = LoopWriter(sessions)
        self._on_stored = on_stored
        self._waiting: list[tuple[Sequence[InboundMessage], asyncio.Future[int]]] = []
        self._lock = asyncio.Lock()

    async def store(self, messages: Sequence[InboundMessage]) -> int:
        """Store `messages`; return how many of them were new."""
        done: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._waiting.append(([normalised(m) for m in messages], done))
        async with self._lock:
            if not done.done():
                batch, self._waiting = self._waiting, []
                await self._write(batch)
                if self._on_stored is not None:
                    self._on_stored()
        return await done

    async def _write(self, batch: list[tuple[Sequence[InboundMessage], asyncio.Future[int]]]) -> None:
        try:
            await self._write_together(batch)
        except asyncio.CancelledError:
            for _, future in batch:  # those already answered keep their answer
                future.cancel()
            raise

    async def _write_together(
        self, batch: list[tuple[Sequence[InboundMessage], asyncio.Future[int]]]
    ) -> None:
        try:
            inserted = await insert_inbound(
                self._sessions, [m for messages, _ in batch for m in messages], self._writer
            )
        except Exception as exc:
            if len(batch) == 1:
                batch[0][1].set_exception(exc)
                return
            log.warning("a group commit of %d webhooks failed (%s): writing each alone",
                        len(batch), type(exc).__name__)  # fmt: skip
            for caller in batch:
                await self._write_together([caller])
            return
        for messages, future in batch:  # a message sent twice in one batch counts for its first caller
            keys = {(m.channel, m.external_id) for m in messages}
            mine = keys & inserted
            inserted -= mine
            future.set_result(len(mine))


async def reply_address_exists(sessions: SessionFactory, address: ReplyAddress) -> bool:
    """Whether we sent `reply+<update>.<token>@` ourselves: that update to the token's subscription.

    The SMTP listener asks at RCPT, the IMAP poller per message. A leaked token with another
    update id is no address of ours. Update 0 is a drill's (`broadcaster.drill.reply`).
    """
    if address.update_id == DRILL_UPDATE_ID:
        return await drill_address_exists(sessions, address.token)
    async with sessions() as session:
        statement = (
            select(col(Delivery.id))
            .join(Subscription, col(Subscription.id) == col(Delivery.subscription_id))
            .where(Subscription.reply_token == address.token, Delivery.update_id == address.update_id)
            .limit(1)
        )
        return (await session.exec(statement)).first() is not None


async def reply_address_for(sessions: SessionFactory, message_ids: Sequence[str], reply_domain: str) -> str:
    """The reply address of the first of `message_ids` we sent (a broadcast e-mail or an answer), or "".

    For a customer whose mail client answered our From address instead of Reply-To: their
    In-Reply-To / References still name our message, which says whose conversation it is.
    """
    if not message_ids:
        return ""
    found: dict[str, str] = {}
    async with sessions() as session:
        broadcasts = (
            select(Delivery.provider_message_id, Delivery.update_id, Subscription.reply_token)
            .join(Subscription, col(Subscription.id) == col(Delivery.subscription_id))
            .where(Delivery.channel == "email", col(Delivery.provider_message_id).in_(message_ids))
        )
        for message_id, update_id, token in await session.exec(broadcasts):
            found.setdefault(message_id, f"{update_id}.{token}")
        answers = (
            select(Message.external_id, Delivery.reply)
            .join(Delivery, col(Delivery.message_id) == col(Message.id))
            .where(Message.channel == "email", col(Message.external_id).in_(message_ids))
        )
        for answered, reply in await session.exec(answers):
            if answered and reply.get("reply_token"):
                found.setdefault(answered, reply["reply_token"])
    for message_id in message_ids:
        if message_id in found:
            return f"reply+{found[message_id]}@{reply_domain}"
    return ""


async def load_cursor(sessions: SessionFactory, name: str) -> str:
    async with sessions() as session:
        row = await session.get(PollCursor, name)
        return row.cursor if row else ""


async def save_cursor(sessions: SessionFactory, name: str, cursor: str) -> None:
    async with sessions() as session:
        row = await session.get(PollCursor, name) or PollCursor(name=name)
        row.cursor, row.updated_at = cursor, utcnow()
        session.add(row)
        await session.commit()


class Poller:
    """Polls a provider (X mentions, X DMs) with a persisted cursor until stopped.

    Messages are stored before the cursor moves, so a crash in between repeats a poll (stored
    once) rather than losing messages. With a `lock`, `run` polls only while this process holds
    it: one node of a deployment polls a source, the others stand by and ask for the lock every
    `interval` (Telegram ends one of two concurrent getUpdates with 409; two IMAP pollers would
    fetch every message twice).
    """

    def __init__(
        self,
        sessions: SessionFactory,
        polls: Mapping[str, Poll],
        interval: float,
        on_stored: Callable[[], None] | None = None,
        max_pause: float = DispatchSettings().max_pause_seconds,
        lock: DeploymentLock | None = None,
    ) -> None:
        self._sessions = sessions
        self._lock = lock
        self._on_stored = on_stored
        self._polls = polls
        self._interval = interval
        self._max_pause = max_pause
        self._paused_until: dict[str, float] = {}

    @property
    def name(self) -> str:
        """Its sources, e.g. "twitter:mentions+twitter:dms": how `/healthz` and `doctor` call it."""
        return "+".join(self._polls)

    async def poll_once(self) -> int:
        """One round over every source; returns how many new messages were stored."""
        stored = 0
        loop = asyncio.get_running_loop()
        for name, poll in self._polls.items():
            if loop.time() < self._paused_until.get(name, 0.0):
                continue
            cursor = await load_cursor(self._sessions, name)
            try:
                messages, new_cursor = await poll(cursor)
            except RateLimited as exc:
                wait = bounded_pause(exc.retry_after, self._max_pause)
                self._paused_until[name] = loop.time() + wait
                log.warning("%s: rate limited, next poll in %.0f s", name, wait)
                continue
            except Rejected as exc:  # e.g. a cursor too old for the provider: start again from now
                log.warning("%s: %s; restarting from the latest messages", name, exc.reason)
                await save_cursor(self._sessions, name, "")
                continue
            except Unauthorized as exc:  # a config problem (credentials, a webhook set): no hammering
                self._paused_until[name] = loop.time() + UNAUTHORIZED_PAUSE_SECONDS
                log.error("%s: %s; next try in %d s", name, exc.reason, UNAUTHORIZED_PAUSE_SECONDS)
                continue
            except DeliveryError as exc:
                log.warning("%s: %s", name, exc.reason)
                continue
            new = await store_inbound(self._sessions, messages)
            if new and self._on_stored is not None:
                self._on_stored()
            stored += new
            if new_cursor != cursor:
                await save_cursor(self._sessions, name, new_cursor)
        return stored

    async def run(self, stop: asyncio.Event) -> None:
        """Poll every `interval` until `stop`; with a `lock`, only while holding it."""
        if self._lock is None:
            await self._poll_until(stop)
            return
        lock = self._lock
        try:
            while not stop.is_set():
                if await lock.acquire():
                    log_event(log, "poller elected", poller=self.name)
                    await self._poll_until(stop, lock)
                    if not stop.is_set():
                        log_event(log, "poller lost its lock", logging.WARNING, poller=self.name)
                await self._pause(stop)
        finally:
            await lock.release()

    async def _poll_until(self, stop: asyncio.Event, lock: DeploymentLock | None = None) -> None:
        while not stop.is_set() and (lock is None or await lock.held()):
            await self.poll_once()
            await self._pause(stop)

    async def _pause(self, stop: asyncio.Event) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=self._interval)
