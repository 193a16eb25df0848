"""Times on the public pages: the brand's zone, named; the locale's medium date; never broken; current."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import update
from sqlmodel import col

from broadcaster.config import Settings
from broadcaster.db import SessionFactory
from broadcaster.models import Incident, IncidentUpdate
from broadcaster.publishing.incidents import UpdateDraft
from broadcaster.web import create_app
from tests.e2e.helpers import draft, follow_up, open_
from tests.served import served

OPENING = draft(
    "investigating", "Le paiement échoue. Désolés, on enquête.", "Payment fails. Sorry, we're on it."
)
TIME = re.compile(r"<time datetime=\"([^\"]+)\">([^<]*)</time>")


def _readable(text: str) -> str:
    return text.replace("\u00a0", " ").replace("\u202f", " ")


@pytest.fixture
def page_client(database_url: str, settings_for: Callable[..., Settings]) -> Callable[..., httpx.AsyncClient]:
    def build(**brand: object) -> httpx.AsyncClient:
        app = create_app(settings_for(brand=brand) if brand else settings_for(), dispatch=False)
        return served(app)

    return build


@pytest.fixture
async def opened(sessions: SessionFactory, settings_for: Callable[..., Settings]) -> AsyncIterator[int]:
    published = await open_(sessions, settings_for(), OPENING, force=True)
    assert published.incident.id is not None
    yield published.incident.id


async def test_every_time_on_the_pages_is_named_and_unbreakable(
    opened: int, page_client: Callable[..., httpx.AsyncClient]
) -> None:
    async with page_client() as client:
        pages = {
            "status fr": (await client.get("/status", headers={"Accept-Language": "fr"})).text,
            "status en": (await client.get("/status", headers={"Accept-Language": "en"})).text,
            "incident fr": (await client.get(f"/incidents/{opened}", headers={"Accept-Language": "fr"})).text,
            "incident en": (await client.get(f"/incidents/{opened}", headers={"Accept-Language": "en"})).text,
        }
        stylesheet = (await client.get("/static/pages.css")).text  # pages carry no inline style (CSP)
    assert "time{white-space:nowrap}" in stylesheet
    for name, page in pages.items():
        times = TIME.findall(page)
        assert times, name
        zone = "(heure\u00a0de\u00a0Paris)" if name.endswith("fr") else "(Paris\u00a0time)"
        for stamp, text in times:
            assert " " not in text, (name, text)  # "17 / h 11" cannot happen
            assert datetime.fromisoformat(stamp).utcoffset() in (timedelta(hours=1), timedelta(hours=2))
            assert page.count(f"{text}</time> {zone}") >= 1, (name, text)
        assert '/static/pages.css">' in page
    english = _readable(TIME.findall(pages["incident en"])[0][1])
    assert re.fullmatch(
        r"[A-Z][a-z]{2} \d{1,2}, \d{4}, \d{1,2}:\d{2} [AP]M", english
    )  # "Dec 2, 2026, 5:11 PM"


async def test_a_brand_publishing_en_gb_reads_british_dates_to_any_english_reader(
    sessions: SessionFactory,
    settings_for: Callable[..., Settings],
    page_client: Callable[..., httpx.AsyncClient],
) -> None:
    british = settings_for(brand={"locales": ["fr", "en_GB"]})
    opening = UpdateDraft(status="investigating", message=OPENING.message, translations={"en_GB": "Sorry."})
    published = await open_(sessions, british, opening, force=True)
    async with page_client(locales=["fr", "en_GB"]) as client:
        page = await client.get(
            f"/incidents/{published.incident.id}", headers={"Accept-Language": "en-US,en;q=0.9"}
        )
    assert 'lang="en-GB"' in page.text and "Service status" in page.text
    assert "Checkout" in page.text  # the component's English label, not the default locale's
    stamp = _readable(TIME.findall(page.text)[0][1])
    assert re.fullmatch(r"\d{1,2} [A-Z][a-z]{2} \d{4}, \d{2}:\d{2}", stamp)  # "2 Dec 2026, 16:54"


async def test_the_banner_says_when_the_incident_was_last_updated(
    opened: int,
    sessions: SessionFactory,
    settings_for: Callable[..., Settings],
    page_client: Callable[..., httpx.AsyncClient],
) -> None:
    opened_at = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)  # opened yesterday…
    async with sessions() as session:
        connection = await session.connection()
        await connection.execute(
            update(Incident).where(col(Incident.id) == opened).values(created_at=opened_at)
        )
        await connection.execute(
            update(IncidentUpdate)
            .where(col(IncidentUpdate.incident_id) == opened)
            .values(created_at=opened_at)
        )
        await session.commit()
    later = await follow_up(  # …updated now
        sessions,
        settings_for(),
        opened,
        draft("identified", "Cause trouvée. Désolés.", "Cause found. Sorry."),
    )
    async with page_client() as client:
        page = (await client.get("/status", headers={"Accept-Language": "fr"})).text
    banner = page[page.index('<div class="banner bad">') : page.index("</div>")]
    (stamp,) = [s for s, _text in TIME.findall(banner)]
    assert datetime.fromisoformat(stamp) == later.update.created_at.replace(second=0, microsecond=0)
    assert "Mis à jour" in banner and "Cause identifiée" in banner
