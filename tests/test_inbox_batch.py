"""Batches: one refused message fails only its own webhook; a filing batch tells the spike detector to
look only after outage reports while no incident is open."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import datetime

from sqlalchemy.engine import make_url
from sqlalchemy.exc import StatementError

from broadcaster.db import SessionFactory, create_engine, session_factory, sqlite_writer
from broadcaster.inbox.bot import StatusBot
from broadcaster.inbox.filing import file_pending_batch
from broadcaster.inbox.inbound import GroupCommit, store_inbound
from broadcaster.models import utcnow
from channels.base import InboundMessage
from tests.conftest import make_settings
from tests.e2e.helpers import draft, open_


def said(text: str, number: int) -> InboundMessage:
    return InboundMessage("telegram", f"9{number}:1", f"9{number}", "@lea", text, utcnow())


async def test_a_batch_asks_for_the_spike_check_only_when_reports_come_with_no_incident_open(
    database_url: str, sessions: SessionFactory
) -> None:
    settings = make_settings(database_url)
    bot = StatusBot(settings)
    await store_inbound(sessions, [said("merci, bonne journée", 1)])
    quiet = await file_pending_batch(sessions, bot=bot)
    assert quiet.filed == 1 and not quiet.unexplained_reports
    await store_inbound(sessions, [said("le site est en panne ?", 2)])
    report = await file_pending_batch(sessions, bot=bot)
    assert report.filed == 1 and report.unexplained_reports
    assert [d.channel for d in report.claimed] == []  # no dispatcher: nothing handed over
    opening = draft("investigating", "Le paiement échoue. Désolés, on enquête.", "Payment fails. Sorry.")
    await open_(sessions, settings, opening, force=True)  # type: ignore[arg-type]
    await store_inbound(sessions, [said("le site est en panne ?", 3)])
    explained = await file_pending_batch(sessions, bot=bot)
    assert explained.filed == 1 and not explained.unexplained_reports
    assert (await file_pending_batch(sessions, bot=bot)).filed == 0


async def test_a_message_the_database_refuses_fails_only_its_own_caller_not_its_batch(
    sqlite_url: str,
) -> None:
    """Webhooks waiting together share one transaction; one row refused there fails only its caller."""
    engine = create_engine(sqlite_url)
    commit = GroupCommit(session_factory(engine))
    refused = dataclasses.replace(said("allo ?", 99), received_at=datetime(2026, 12, 3, 12, 0))  # naive
    try:
        async with sqlite_writer(make_url(sqlite_url)):  # the first caller waits for it, the rest queue
            calls = [asyncio.create_task(commit.store([said("allo ?", n)])) for n in range(1, 6)]
            calls.insert(3, asyncio.create_task(commit.store([refused])))
            await asyncio.sleep(0)  # one turn of the loop: each call runs to where it waits
        results = await asyncio.gather(*calls, return_exceptions=True)
    finally:
        await engine.dispose()
    assert isinstance(results[3], StatementError) and "naive datetime" in str(results[3])
    assert results[:3] + results[4:] == [1, 1, 1, 1, 1]
