"""Claims: concurrent workers never take the same row; an expired lease makes a row claimable again."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from sqlalchemy import update
from sqlmodel import col, select

from broadcaster.db import SessionFactory, is_sqlite, writing
from broadcaster.delivery import outbox
from broadcaster.delivery.outbox import DeliveryKey, Outcome, parse_idempotency_key
from broadcaster.models import Delivery, Subscription, utcnow
from tests.conftest import make_settings
from tests.e2e.helpers import draft, open_, people, subscribe


async def _queue(database_url: str, sessions: SessionFactory, subscribers: int) -> None:
    settings = make_settings(database_url)
    await subscribe(sessions, settings, people(subscribers))
    await open_(
        sessions,
        settings,
        draft(
            "investigating",
            "Le paiement échoue. Désolés, nous enquêtons.",
            "Payment fails. Sorry, we are investigating.",
        ),
        force=True,
    )


async def test_concurrent_claims_are_disjoint_and_cover_everything(
    database_url: str, sessions: SessionFactory
) -> None:
    await _queue(database_url, sessions, 400)  # 200 e-mail rows

    async def claimer() -> list[int]:
        taken: list[int] = []
        async with sessions() as session:
            for _ in range(100):  # bounded
                batch = await outbox.claim(session, "email", 7, lease_seconds=60)
                if not batch:
                    return taken
                taken.extend(d.id for d in batch)
        return taken

    results = await asyncio.gather(*(claimer() for _ in range(4)))
    every = [i for r in results for i in r]
    assert len(every) == len(set(every)) == 200


async def test_expired_lease_is_claimed_again_and_stale_outcome_is_ignored(
    database_url: str, sessions: SessionFactory
) -> None:
    await _queue(database_url, sessions, 4)  # 2 e-mail rows
    async with sessions() as session:
        first = await outbox.claim(session, "email", 10, lease_seconds=30)
        assert len(first) == 2
        assert await outbox.claim(session, "email", 10, lease_seconds=30) == []
        later = utcnow() + timedelta(seconds=31)
        second = await outbox.claim(session, "email", 10, lease_seconds=30, now=later)
        assert sorted(d.id for d in second) == sorted(d.id for d in first)
        assert all(d.attempts == 2 for d in second)
        # The crashed worker's late outcome must not overwrite the new claim.
        await outbox.record(session, [Outcome(d, outbox.SENT, provider_message_id="stale") for d in first])
        counts = await outbox.counts_by_channel(session, [first[0].update_id])
        assert counts["email"] == {"sending": 2}
        await outbox.record(session, [Outcome(d, outbox.SENT, provider_message_id="fresh") for d in second])
        counts = await outbox.counts_by_channel(session, [first[0].update_id])
        assert counts["email"] == {"sent": 2}


async def test_renewed_lease_is_not_claimed_and_only_the_holders_live_rows_are_renewed(
    database_url: str, sessions: SessionFactory
) -> None:
    await _queue(database_url, sessions, 4)  # 2 e-mail rows
    async with sessions() as session:
        held = await outbox.claim(session, "email", 10, lease_seconds=10)
        token = held[0].claim_token
        later = utcnow() + timedelta(seconds=8)
        assert await outbox.renew(session, "email", [token], 10, now=later) == 2
        assert await outbox.renew(session, "email", ["someone-else"], 10, now=later) == 0
        assert await outbox.renew(session, "telegram", [token], 10, now=later) == 0
        past_first_lease = utcnow() + timedelta(seconds=15)
        assert await outbox.claim(session, "email", 10, lease_seconds=10, now=past_first_lease) == []
        await outbox.record(session, [Outcome(held[0], outbox.SENT, provider_message_id="m1")])
        assert await outbox.renew(session, "email", [token], 10) == 1  # the sent row stays sent
        past_renewal = utcnow() + timedelta(seconds=30)
        again = await outbox.claim(session, "email", 10, lease_seconds=10, now=past_renewal)
        assert [d.id for d in again] == [held[1].id]


async def test_a_retry_whose_subscription_ended_during_its_attempt_never_leaves(
    database_url: str, sessions: SessionFactory
) -> None:
    await _queue(database_url, sessions, 4)  # 2 e-mail rows
    async with sessions() as session:
        in_flight = await outbox.claim(session, "email", 10, lease_seconds=30)
        ended, kept = in_flight
        async with writing(session):
            await session.exec(  # type: ignore[call-overload]
                update(Subscription)
                .where(col(Subscription.id) == ended.subscription_id)
                .values(active=False, deactivated_reason="unsubscribed")
            )
            await session.exec(outbox.withdrawal([ended.subscription_id], "unsubscribed"))  # type: ignore[call-overload]
            await session.commit()
        soon = utcnow() + timedelta(seconds=1)
        retries = [Outcome(d, outbox.PENDING, next_attempt_at=soon, error="421") for d in in_flight]
        await outbox.record(session, retries)
        rows = {
            d.id: (d.status, d.last_error)
            for d in (await session.exec(select(Delivery).where(col(Delivery.channel) == "email"))).all()
        }
    assert rows == {ended.id: ("failed", "not sent: unsubscribed"), kept.id: ("pending", "421")}


def test_backoff_grows_exponentially_with_jitter_and_is_capped() -> None:
    import random

    from broadcaster.config import DispatchSettings
    from broadcaster.delivery.dispatch import backoff_delay

    settings = DispatchSettings(backoff_base_seconds=2, backoff_max_seconds=60)
    rng = random.Random(7)
    for attempts, ceiling in [(1, 2), (2, 4), (3, 8), (6, 60), (20, 60)]:
        delays = [backoff_delay(attempts, settings, rng) for _ in range(50)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(set(delays)) > 1  # jittered: retries of many rows do not line up


def test_idempotency_keys_name_their_update_answer_or_alert() -> None:
    assert parse_idempotency_key("12:email:a@example.com") == DeliveryKey(update_id=12)
    assert parse_idempotency_key('12:push:webpush:{"endpoint": 1}') == DeliveryKey(update_id=12)
    assert parse_idempotency_key("reply:7") == DeliveryKey(message_id=7)
    assert parse_idempotency_key("alert:3") == DeliveryKey(alert_id=3)
    assert parse_idempotency_key("reply:x") == parse_idempotency_key("junk") == DeliveryKey()


async def test_a_claim_never_takes_more_than_its_limit(database_url: str, sessions: SessionFactory) -> None:
    await _queue(database_url, sessions, 80)  # 40 e-mail rows
    async with sessions() as session:
        tried = await outbox.claim(session, "email", 40, lease_seconds=60)
        later = utcnow() + timedelta(seconds=30)
        await outbox.record(session, [Outcome(d, outbox.PENDING, next_attempt_at=later) for d in tried[::2]])
        await outbox.record(session, [Outcome(d, outbox.PENDING) for d in tried[1::2]])
        sizes = [len(await outbox.claim(session, "email", 1, lease_seconds=60)) for _ in range(10)]
    assert sizes == [1] * 10  # a breaker's one probe is one row


async def test_a_claim_walks_the_live_rows_in_order_whatever_the_outbox_holds(
    database_url: str, sessions: SessionFactory
) -> None:
    """The claim's plan reads the partial index of live rows in claim order (no sort of every due
    row), so its cost is the rows it takes, not the outbox's size: checked on the plan, not a clock."""
    from sqlalchemy import event

    await _queue(database_url, sessions, 40)
    seen: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        if statement.lstrip().startswith("WITH picked"):
            seen.append((statement, parameters))

    engine = sessions.kw["bind"]
    event.listen(engine.sync_engine, "before_cursor_execute", capture)
    try:
        async with sessions() as session:
            assert len(await outbox.claim(session, "email", 5, lease_seconds=60)) == 5
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", capture)
    ((statement, parameters),) = seen
    async with engine.connect() as connection:
        if is_sqlite(database_url):
            rows = await connection.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)
            plan = [str(row[-1]) for row in rows]
        else:  # as if the table were large: a sequential scan is the planner's choice on 20 rows
            await connection.exec_driver_sql("SET enable_seqscan = off")
            await connection.exec_driver_sql("SET enable_bitmapscan = off")
            rows = await connection.exec_driver_sql("EXPLAIN " + statement, parameters)
            plan = [str(row[0]) for row in rows]
    assert any("ix_delivery_due" in line for line in plan), plan
    assert not any("TEMP B-TREE" in line or line.strip(" ->").startswith("Sort") for line in plan), plan
