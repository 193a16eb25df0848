"""A maintenance on the public pages: its own page says when, its notices once; never an incident."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest

from broadcaster.config import Settings
from broadcaster.db import SessionFactory
from broadcaster.models import utcnow
from broadcaster.publishing.maintenance import (
    cancel_maintenance,
    complete_maintenance,
    post_notice,
    reschedule_maintenance,
    schedule_maintenance,
    start_maintenance,
)
from broadcaster.web import create_app
from tests.conftest import make_settings
from tests.e2e.helpers import draft, open_, resolve
from tests.served import served

ATOM = "{http://www.w3.org/2005/Atom}"
PARIS = ZoneInfo("Europe/Paris")
TEXT = {
    "fr": "Nous mettons à jour notre système de paiement pour le rendre plus rapide.",
    "en": "We are upgrading our payment system to make it faster.",
}
NOW = utcnow().replace(second=0, microsecond=0)  # the history shows the last 30 days of real time
DAY = (NOW + timedelta(days=3)).astimezone(PARIS).date()
START = datetime.combine(DAY, time(2, 0), tzinfo=PARIS).astimezone(UTC)  # 02:00 in Paris
END = START + timedelta(hours=2, minutes=30)  # 04:30


def _stamp(at: datetime) -> str:
    """A `<time datetime>` attribute: the brand's local time, to the minute, with its offset."""
    return at.astimezone(PARIS).isoformat(timespec="minutes")


def _section(page: str, heading: str) -> str:
    """The HTML from the `<h2>` named `heading` to the next one."""
    start = page.index(f"<h2>{heading}</h2>")
    after = page.find("<h2>", start + 1)
    return page[start : after if after != -1 else len(page)]


def _notices(section: str) -> dict[str, str]:
    """Each notice's HTML by its heading, in page order."""
    blocks = re.findall(r"<section class=\"update notice\".*?</section>", section, flags=re.S)
    found = {re.findall(r"<strong>([^<]+)</strong>", block)[0]: block for block in blocks}
    assert len(found) == len(blocks)  # no heading twice
    return found


@pytest.fixture
async def client(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(make_settings(database_url), dispatch=False)
    async with served(app) as c:
        yield c


async def _schedule(
    sessions: SessionFactory, settings: Settings, title: str = "Mise à jour du paiement"
) -> int:
    async with sessions() as session:
        incident = await schedule_maintenance(
            session, settings, title=title, starts_at=START, ends_at=END,
            components=["checkout", "payment"], message=TEXT, author="cm", now=NOW,
        )  # fmt: skip
    assert incident.id is not None
    return incident.id


async def _ladder(sessions: SessionFactory, settings: Settings, maintenance_id: int) -> None:
    """The default ladder's three rungs: e-mail, push, then the social posts."""
    for minutes, channels in ((1, ["email"]), (2, ["push"]), (3, ["twitter", "facebook", "telegram"])):
        async with sessions() as session:
            sent = await post_notice(
                session, settings, maintenance_id, phase="notice", channels=channels,
                now=NOW + timedelta(minutes=minutes),
            )  # fmt: skip
        assert sent is not None


async def test_a_maintenance_page_gives_the_window_and_each_notice_once(
    database_url: str, sessions: SessionFactory, client: httpx.AsyncClient
) -> None:
    settings = make_settings(database_url)
    maintenance_id = await _schedule(sessions, settings)
    await _ladder(sessions, settings, maintenance_id)
    moved_start, moved_end = START + timedelta(days=1), END + timedelta(days=1)
    async with sessions() as session:
        await reschedule_maintenance(
            session, settings, maintenance_id, starts_at=moved_start, ends_at=moved_end,
            now=NOW + timedelta(minutes=10), author="cm",
        )  # fmt: skip
    async with sessions() as session:  # the last rung goes out again, now with the new window
        await post_notice(
            session, settings, maintenance_id, phase="notice", channels=["twitter"],
            now=NOW + timedelta(minutes=11),
        )  # fmt: skip
    async with sessions() as session:
        assert await start_maintenance(session, settings, maintenance_id, moved_start) is not None
    async with sessions() as session:  # later, then earlier again (still ahead): two different notices
        await reschedule_maintenance(
            session, settings, maintenance_id, ends_at=moved_end + timedelta(hours=1),
            now=moved_start + timedelta(hours=1), author="cm",
        )  # fmt: skip
    async with sessions() as session:
        await reschedule_maintenance(
            session, settings, maintenance_id, ends_at=moved_end + timedelta(minutes=30),
            now=moved_start + timedelta(hours=2), author="cm",
        )  # fmt: skip
    async with sessions() as session:
        done = await complete_maintenance(
            session, settings, maintenance_id, moved_end + timedelta(minutes=30)
        )
    assert done is not None

    page = (await client.get(f"/incidents/{maintenance_id}", headers={"Accept-Language": "fr"})).text
    assert page.count(TEXT["fr"]) == 1  # the CM's text once, not once per rung
    window = page[page.index('<dl class="window">') : page.index("</dl>")]
    assert f'datetime="{_stamp(moved_start)}"' in window  # the current window…
    assert f'datetime="{_stamp(moved_end + timedelta(minutes=30))}"' in window
    assert window.count("(heure\u00a0de\u00a0Paris)") == 2  # …in the brand's zone, named
    assert "<dt>Durée</dt><dd>3\u00a0h</dd>" in window  # the duration, unbroken too

    notices = _notices(_section(page, "Avis publiés"))
    assert list(notices) == [  # newest first, each once: three rungs and a re-sent one are one announcement
        "Maintenance terminée",
        "Maintenance écourtée",
        "Maintenance prolongée",
        "Maintenance commencée",
        "Maintenance reprogrammée",
        "Maintenance annoncée",
    ]
    rescheduled = notices["Maintenance reprogrammée"]
    assert "Nouveau créneau" in rescheduled and "Créneau précédent" in rescheduled
    assert f'datetime="{_stamp(moved_start)}"' in rescheduled and f'datetime="{_stamp(START)}"' in rescheduled
    shortened = notices["Maintenance écourtée"]
    assert f'datetime="{_stamp(moved_end + timedelta(minutes=30))}"' in shortened  # the new end…
    assert f'datetime="{_stamp(moved_end + timedelta(hours=1))}"' in shortened  # …instead of the later one
    announced = notices["Maintenance annoncée"]
    assert f'datetime="{_stamp(NOW)}"' in announced  # dated when it was announced (scheduled)
    assert f'datetime="{_stamp(START)}"' in announced  # with the window it announced

    english = (await client.get(f"/incidents/{maintenance_id}", headers={"Accept-Language": "en"})).text
    assert english.count(TEXT["en"]) == 1 and "<strong>Maintenance shortened</strong>" in english
    assert "(Paris\u00a0time)" in english


async def test_a_cancelled_maintenance_page_says_so(
    database_url: str, sessions: SessionFactory, client: httpx.AsyncClient
) -> None:
    settings = make_settings(database_url)
    maintenance_id = await _schedule(sessions, settings)
    await _ladder(sessions, settings, maintenance_id)
    async with sessions() as session:
        await cancel_maintenance(session, settings, maintenance_id, now=NOW + timedelta(hours=1), author="cm")
    page = (await client.get(f"/incidents/{maintenance_id}", headers={"Accept-Language": "en"})).text
    assert list(_notices(_section(page, "Notices"))) == ["Maintenance cancelled", "Maintenance announced"]


async def test_the_status_page_lists_maintenance_apart_from_incidents(
    database_url: str, sessions: SessionFactory, client: httpx.AsyncClient
) -> None:
    settings = make_settings(database_url)
    resolved = await open_(
        sessions, settings, draft("investigating", "Le paiement échoue. Désolés.", "Payment fails. Sorry."),
        force=True,
    )  # fmt: skip
    assert resolved.incident.id is not None
    await resolve(
        sessions, settings, resolved.incident.id,
        draft("resolved", "Tout fonctionne. Merci.", "All good. Thank you."),
    )  # fmt: skip
    done = await _schedule(sessions, settings, "Mise à jour du paiement")
    async with sessions() as session:
        await start_maintenance(session, settings, done, START)
    async with sessions() as session:
        await complete_maintenance(session, settings, done, END)
    called_off = await _schedule(sessions, settings, "Migration du site")
    async with sessions() as session:
        await cancel_maintenance(session, settings, called_off, now=NOW, author="cm")
    await _schedule(sessions, settings, "Nouvelle application")
    await open_(
        sessions, settings, draft("investigating", "Le site est lent. Désolés.", "The site is slow. Sorry."),
        title="Site lent", impact="minor", components=["website"], force=True,
    )  # fmt: skip

    page = (await client.get("/status", headers={"Accept-Language": "fr"})).text
    assert "Incident en cours\u00a0: " in page and "Site lent" in page
    history = _section(page, "Incidents des 30 derniers jours")
    assert "Paiement indisponible" in history
    assert "Mise à jour du paiement" not in history and "Migration du site" not in history
    past = _section(page, "Maintenances des 30 derniers jours")
    assert re.search(r"Mise à jour du paiement</a> <span class=\"outcome completed\">Terminée</span>", past)
    assert re.search(r"Migration du site</a> <span class=\"outcome cancelled\">Annulée</span>", past)
    assert past.count(f'datetime="{_stamp(START)}"') == 2 and past.count(f'datetime="{_stamp(END)}"') == 2
    assert "(heure\u00a0de\u00a0Paris)" in past
    upcoming = _section(page, "Maintenances prévues")
    assert "Nouvelle application" in upcoming and "Mise à jour du paiement" not in upcoming


async def test_the_feed_has_one_entry_per_distinct_notice(
    database_url: str, sessions: SessionFactory, client: httpx.AsyncClient
) -> None:
    settings = make_settings(database_url)
    maintenance_id = await _schedule(sessions, settings)
    await _ladder(sessions, settings, maintenance_id)
    async with sessions() as session:
        await start_maintenance(session, settings, maintenance_id, START)
    root = ET.fromstring((await client.get("/feed.atom")).content)
    entries = root.findall(f"{ATOM}entry")
    titles = [e.findtext(f"{ATOM}title") for e in entries]
    assert titles == [
        "Mise à jour du paiement — Maintenance commencée",
        "Mise à jour du paiement — Maintenance annoncée",
    ]
    assert {e.find(f"{ATOM}category").get("term") for e in entries} == {"maintenance"}
    announced = entries[1].findtext(f"{ATOM}content") or ""
    assert "Créneau prévu" in announced and "heure\u00a0de\u00a0Paris" in announced


async def test_the_api_says_maintenance_not_incident(
    database_url: str, sessions: SessionFactory, client: httpx.AsyncClient
) -> None:
    settings = make_settings(database_url)
    maintenance_id = await _schedule(sessions, settings)
    planned = (await client.get("/api/v1/status")).json()
    assert planned["status"] == "operational" and planned["incidents"] == []
    assert [(m["id"], m["status"]) for m in planned["maintenances"]] == [(maintenance_id, "scheduled")]
    async with sessions() as session:
        await start_maintenance(session, settings, maintenance_id, START)
    running = (await client.get("/api/v1/status")).json()
    assert running["status"] == "maintenance" and running["incidents"] == []
    (maintenance,) = running["maintenances"]
    assert maintenance["status"] == "in_progress"
    assert datetime.fromisoformat(maintenance["starts_at"]) == START
    assert datetime.fromisoformat(maintenance["ends_at"]) == END
