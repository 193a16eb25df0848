"""What a filing batch tells the spike detector: look only after outage reports while no incident is open."""

from __future__ import annotations

from broadcaster.db import SessionFactory
from broadcaster.inbound import store_inbound
from broadcaster.inbox import file_pending_batch
from broadcaster.models import utcnow
from broadcaster.status_bot import StatusBot
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
