"""The deployment's shared pacing budget, on the real stores: PostgreSQL and Redis.

Two `SharedPacing` over two connections stand for two workers. What is checked is what the store
hands out (the reserved slots, counted posts, a pause), never how long anything took.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest

from broadcaster.db import create_engine
from broadcaster.delivery.shared_pacing import (
    MARGIN,
    PaceStore,
    PostgresPaceStore,
    RedisPaceStore,
    SharedPacing,
    deployment_pacing,
)


@pytest.fixture(params=["postgresql", "redis"])
def store_url(request: pytest.FixtureRequest) -> tuple[str, str]:
    fixture = "redis_url" if request.param == "redis" else "pg_database_url"
    return request.param, request.getfixturevalue(fixture)


@pytest.fixture
async def two_stores(store_url: tuple[str, str]) -> AsyncIterator[tuple[PaceStore, PaceStore]]:
    """Two connections to one store, as two workers have."""
    kind, url = store_url
    if kind == "redis":
        stores: tuple[PaceStore, PaceStore] = (RedisPaceStore(url), RedisPaceStore(url))
        yield stores
        for store in stores:
            await store.aclose()
        return
    engines = create_engine(url), create_engine(url)
    yield PostgresPaceStore(engines[0]), PostgresPaceStore(engines[1])
    for engine in engines:
        await engine.dispose()


async def test_two_workers_get_distinct_slots_spaced_by_the_limit(
    two_stores: tuple[PaceStore, PaceStore],
) -> None:
    spacing = 10.0  # one grant every 10 s: the slots are far apart whatever the machine's speed
    first, second = two_stores
    asked = [(first, second)[i % 2].admit("bot:1", spacing, 100, 1.0, 1, 0.0) for i in range(6)]
    answers = await asyncio.gather(*asked)

    # Six reservations from two workers: one each at 0, 10, 20 … 50 s from now, none shared.
    assert all(reservation for _, reservation in answers)
    slots = sorted(wait for wait, _ in answers)
    assert slots[0] == pytest.approx(0, abs=1.0)
    for earlier, later in zip(slots, slots[1:], strict=False):
        assert later - earlier == pytest.approx(spacing, abs=1.0)


async def test_a_reservation_of_three_messages_takes_three_slots(
    two_stores: tuple[PaceStore, PaceStore],
) -> None:
    first, second = two_stores
    await first.admit("bot:2", 10.0, 100, 1.0, 3, 0.0)
    assert (await second.admit("bot:2", 10.0, 100, 1.0, 1, 0.0))[0] == pytest.approx(30.0, abs=1.0)


async def test_a_pause_holds_for_the_other_worker_and_saves_nothing_up(
    two_stores: tuple[PaceStore, PaceStore],
) -> None:
    first, second = two_stores
    await first.hold_off("bot:3", 120.0)  # a 429 with retry_after 120 seen by the first worker
    after_pause, _ = await second.admit("bot:3", 10.0, 100, 1.0, 1, 0.0)
    assert after_pause == pytest.approx(120.0, abs=2.0)
    next_one, _ = await first.admit("bot:3", 10.0, 100, 1.0, 1, 0.0)
    assert next_one == pytest.approx(130.0, abs=2.0)  # no burst after


async def test_scopes_are_apart(two_stores: tuple[PaceStore, PaceStore]) -> None:
    first, second = two_stores
    await first.admit("bot:4:chat:1", 10.0, 1, 1.0, 1, 0.0)
    assert (await second.admit("bot:4:chat:2", 10.0, 1, 1.0, 1, 0.0))[0] == pytest.approx(0, abs=1.0)


async def test_a_counted_budget_allows_its_limit_and_no_more_across_workers(
    two_stores: tuple[PaceStore, PaceStore],
) -> None:
    first, second = two_stores
    scope, limit, window = "x:posts", 3, 900.0
    assert (await first.count(scope, limit, window, 2))[0] == 0
    refused_wait, refused = await second.count(scope, limit, window, 2)  # 2 + 2 > 3: nothing counted
    assert refused_wait == pytest.approx(window, abs=5.0) and refused == ""
    wait, reservation = await second.count(scope, limit, window, 1)
    assert wait == 0 and reservation
    assert (await first.count(scope, limit, window, 1))[0] > 0  # 3 of 3 used, whoever asks

    await second.refund(scope, reservation, 1)  # that post was not made: its place is free again
    assert (await first.count(scope, limit, window, 1))[0] == 0


async def test_a_store_that_does_not_answer_is_logged_once_and_sends_go_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    pacing = SharedPacing(RedisPaceStore("redis://127.0.0.1:9/0"))  # nothing listens on port 9
    window = pacing.window("telegram:5", limit=1000, window=1.0)
    caplog.set_level(logging.INFO, logger="broadcaster.delivery.shared_pacing")
    sent = 0
    for _ in range(20):
        async with window.turn():
            sent += 1
    await pacing.aclose()

    assert sent == 20
    down = [r for r in caplog.records if "pacing store down" in r.getMessage()]
    assert len(down) == 1
    assert "redis 127.0.0.1:9/0" in down[0].getMessage()


def test_a_redis_password_stays_out_of_the_store_label() -> None:
    store = RedisPaceStore("redis://:hunter2-secret@127.0.0.1:6379/3")
    assert "hunter2" not in store.label and "hunter2" not in repr(store)
    assert store.label == "redis 127.0.0.1:6379/3"


async def test_sqlite_has_no_shared_store_and_postgresql_does(pg_database_url: str, tmp_path: object) -> None:
    sqlite = create_engine(f"sqlite+aiosqlite:///{tmp_path}/x.db")
    postgres = create_engine(pg_database_url)
    try:
        assert deployment_pacing(None, sqlite) is None
        shared = deployment_pacing(None, postgres)
        assert shared is not None and shared.store.label == "postgresql"
        redis_first = deployment_pacing("redis://127.0.0.1:6379/1", postgres)
        assert redis_first is not None and redis_first.store.label.startswith("redis")
        await redis_first.aclose()
    finally:
        await sqlite.dispose()
        await postgres.dispose()


def test_the_margin_keeps_the_rate_within_the_issue_s_95_percent() -> None:
    assert 1 / (1 + MARGIN) >= 0.95


async def test_a_send_in_flight_counts_until_a_window_after_it_ends(
    two_stores: tuple[PaceStore, PaceStore],
) -> None:
    first, second = two_stores
    scope, window = "bot:6:sent", 30.0
    _, in_flight = await first.count(scope, 1, window, 1, hold=600.0)  # a send still waiting for X
    assert (await second.count(scope, 1, window, 1))[0] == pytest.approx(630.0, abs=2.0)
    await first.settle(scope, in_flight, 600.0, 0.0)  # it ended at once: out of the window in 30 s
    assert (await second.count(scope, 1, window, 1))[0] == pytest.approx(30.0, abs=2.0)


async def test_admission_spaces_sends_and_counts_them_until_a_window_after_they_end(
    two_stores: tuple[PaceStore, PaceStore],
) -> None:
    first, second = two_stores
    bot, spacing, limit, window, hold = "bot:7", 1.0, 2, 100.0, 600.0
    wait, sending = await first.admit(bot, spacing, limit, window, 1, hold)
    assert wait == pytest.approx(0, abs=0.5) and sending
    wait, other = await second.admit(bot, spacing, limit, window, 1, hold)
    assert wait == pytest.approx(spacing, abs=0.5) and other  # the next slot, the other worker's

    # Two sends in flight fill a window of 2: a third waits for one to end and leave the window.
    wait, refused = await first.admit(bot, spacing, limit, window, 1, hold)
    assert refused == "" and wait == pytest.approx(hold + window, abs=5.0)
    await second.settle(f"{bot}:sent", sending, hold, 0.0)  # it ended right at its slot
    wait, refused = await first.admit(bot, spacing, limit, window, 1, hold)
    assert refused == "" and wait == pytest.approx(window, abs=5.0)
