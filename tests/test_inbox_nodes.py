"""Two nodes filing at once on PostgreSQL: each takes other records (SKIP LOCKED), but two records of
one customer must not be filed side by side — the bot would answer the same question twice (each
node read "not answered yet"), and a new customer's conversation would be inserted twice (the
second node's whole batch then fails on the unique key).

The interleaving is forced, not hoped for: node A reads its batch and holds it open; node B reads
(in a thread) while A has not committed; then A writes and commits, then B writes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
from sqlalchemy import Connection, Engine, create_engine, func, select, text

from broadcaster.config import Settings
from broadcaster.db import SessionFactory
from broadcaster.inbox.bot import StatusBot
from broadcaster.inbox.filing import BATCH, Reading, read_batch, write_batch
from broadcaster.inbox.inbound import store_inbound
from broadcaster.models import Conversation, Message, utcnow
from broadcaster.schedule.runner import sync_database_url
from channels.base import InboundMessage
from tests.conftest import make_settings

pytestmark = pytest.mark.postgres
WAIT = 30.0


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite has one writer: two filers never read side by side there")
    sync = create_engine(sync_database_url(database_url))  # the filer's statements, on threads
    yield sync
    sync.dispose()


def asked(chat: str, number: int, text_: str = "le site est en panne ?") -> InboundMessage:
    return InboundMessage("telegram", f"{chat}:{number}", chat, "@lea", text_, utcnow())


def waiting_for_a_lock(engine: Engine) -> bool:
    with engine.connect() as connection:
        statement = text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")
        return bool(connection.execute(statement).scalar())


def file_side_by_side(engine: Engine, settings: Settings) -> None:
    """Node A reads one record; node B reads the next before A commits; A writes, then B."""
    bot = StatusBot(settings)
    with engine.connect() as a, engine.connect() as b:
        reading_a = read_batch(a, 1)
        assert reading_a is not None
        read: list[Reading | None] = []
        thread = threading.Thread(target=lambda: read.append(read_batch(b, BATCH)))
        thread.start()
        deadline = time.monotonic() + WAIT  # B has read, or waits for A: either way A goes on
        while thread.is_alive() and not waiting_for_a_lock(engine) and time.monotonic() < deadline:
            time.sleep(0.02)
        write_batch(a, reading_a, bot)
        thread.join(WAIT)
        assert not thread.is_alive() and read and read[0] is not None
        write_batch(b, read[0], bot)


def answers(connection: Connection) -> int:
    table = Message.__table__  # type: ignore[attr-defined]
    return int(connection.execute(select(func.count()).where(table.c.direction == "out")).scalar_one())


async def test_two_nodes_filing_one_customers_questions_at_once_answer_once(
    sessions: SessionFactory, database_url: str, engine: Engine
) -> None:
    settings = make_settings(database_url)
    await store_inbound(sessions, [asked("4001", 1, "bonjour")])
    with engine.connect() as connection:  # the conversation exists, not answered yet
        assert (reading := read_batch(connection)) is not None
        write_batch(connection, reading, StatusBot(settings))
    await store_inbound(sessions, [asked("4001", 2), asked("4001", 3)])
    file_side_by_side(engine, settings)
    with engine.connect() as connection:
        assert answers(connection) == 1  # one answer per state, whichever node filed


async def test_two_nodes_filing_a_new_customers_first_messages_at_once_make_one_conversation(
    sessions: SessionFactory, database_url: str, engine: Engine
) -> None:
    settings = make_settings(database_url)
    await store_inbound(sessions, [asked("4002", 1), asked("4002", 2)])
    file_side_by_side(engine, settings)  # without the lock: B's insert fails on uq_conversation_key
    with engine.connect() as connection:
        table = Conversation.__table__  # type: ignore[attr-defined]
        assert connection.execute(select(func.count()).select_from(table)).scalar_one() == 1
        messages = Message.__table__  # type: ignore[attr-defined]
        filed = select(func.count()).where(messages.c.direction == "in")
        assert connection.execute(filed).scalar_one() == 2
        assert answers(connection) == 1
