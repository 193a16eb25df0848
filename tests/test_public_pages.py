"""The pages every message links to: /status, /incidents/<id> and /feed.atom."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import httpx
import pytest
from sqlmodel import select

from broadcaster.db import SessionFactory
from broadcaster.models import Incident, IncidentUpdate, Rendition
from broadcaster.web import create_app
from tests.conftest import make_settings
from tests.e2e.helpers import draft, follow_up, open_, resolve
from tests.served import served

ATOM = "{http://www.w3.org/2005/Atom}"
FR_OPEN = "Le paiement échoue pour une partie d'entre vous. Désolés, on enquête. <script>alert(1)</script>"
EN_OPEN = "Payment fails for some of you. Sorry, we are investigating."


@pytest.fixture
async def client(database_url: str) -> httpx.AsyncClient:
    app = create_app(make_settings(database_url), dispatch=False)
    async with served(app) as c:
        yield c


async def test_status_page_says_all_is_well_in_the_visitors_language(client: httpx.AsyncClient) -> None:
    french = await client.get("/status", headers={"Accept-Language": "fr-FR,fr;q=0.9,en;q=0.5"})
    assert french.status_code == 200
    assert "Tous nos services fonctionnent normalement." in french.text
    assert 'lang="fr"' in french.text
    english = await client.get("/status", headers={"Accept-Language": "de-DE, en-GB;q=0.8"})
    assert "All our services are working normally." in english.text
    assert "Checkout" in english.text and "Operational" in english.text


async def test_incident_page_and_status_follow_the_incident(
    database_url: str, sessions: SessionFactory, client: httpx.AsyncClient
) -> None:
    settings = make_settings(database_url)
    opened = await open_(sessions, settings, draft("investigating", FR_OPEN, EN_OPEN), force=True)
    incident_id = opened.incident.id
    assert incident_id is not None
    await follow_up(
        sessions,
        settings,
        incident_id,
        draft(
            "identified", "Cause trouvée, correctif en cours. Désolés.", "Cause found, fix under way. Sorry."
        ),
    )

    status = await client.get("/status", headers={"Accept-Language": "fr"})
    assert "Incident en cours" in status.text and f"/incidents/{incident_id}" in status.text
    assert "Panne partielle" in status.text  # checkout, impact major

    page = await client.get(f"/incidents/{incident_id}", headers={"Accept-Language": "en"})
    assert page.status_code == 200
    assert page.text.index("Cause found") < page.text.index("Payment fails")  # newest first
    french = await client.get(f"/incidents/{incident_id}", headers={"Accept-Language": "fr"})
    assert "<script>" not in french.text and "&lt;script&gt;" in french.text

    await resolve(
        sessions,
        settings,
        incident_id,
        draft(
            "resolved",
            "Tout fonctionne. Merci pour votre patience.",
            "All good. Thank you for your patience.",
        ),
    )
    status = await client.get("/status", headers={"Accept-Language": "en"})
    assert "All our services are working normally." in status.text
    assert "Payment unavailable" in status.text or "Paiement indisponible" in status.text  # in the history
    assert (await client.get("/incidents/999")).status_code == 404


async def test_atom_feed_lists_updates_newest_first(
    database_url: str, sessions: SessionFactory, client: httpx.AsyncClient
) -> None:
    settings = make_settings(database_url)
    opened = await open_(sessions, settings, draft("investigating", FR_OPEN, EN_OPEN), force=True)
    assert opened.incident.id is not None
    await follow_up(
        sessions,
        settings,
        opened.incident.id,
        draft(
            "identified", "Cause trouvée, correctif en cours. Désolés.", "Cause found, fix under way. Sorry."
        ),
    )
    response = await client.get("/feed.atom")
    assert response.headers["content-type"].startswith("application/atom+xml")
    root = ET.fromstring(response.content)
    entries = root.findall(f"{ATOM}entry")
    assert len(entries) == 2
    titles = [e.findtext(f"{ATOM}title") for e in entries]
    assert titles[0].endswith("Cause identifiée") and titles[1].endswith("Nous enquêtons")
    assert entries[0].find(f"{ATOM}link").get("href").endswith(f"/incidents/{opened.incident.id}")


async def test_stored_control_characters_do_not_break_the_feed_or_the_pages(
    database_url: str, sessions: SessionFactory, client: httpx.AsyncClient
) -> None:
    settings = make_settings(database_url)
    opened = await open_(sessions, settings, draft("investigating", FR_OPEN, EN_OPEN), force=True)
    incident_id = opened.incident.id
    # Rows written before publication refused them: poison the title, the message and the rendition.
    async with sessions() as session:
        incident = await session.get(Incident, incident_id)
        assert incident is not None
        incident.title = "Paiement\x07 indisponible\x1b[31m"
        session.add(incident)
        for update in await session.exec(select(IncidentUpdate)):
            update.messages = {k: v.replace("Désolés", "Dés\x07olés\x00") for k, v in update.messages.items()}
            session.add(update)
        for rendition in await session.exec(select(Rendition)):
            rendition.payload = rendition.payload.replace("Désolés", "Dés\\u0007olés\\u0000")
            session.add(rendition)
        await session.commit()

    feed = await client.get("/feed.atom")
    assert feed.status_code == 200
    [entry] = ET.fromstring(feed.content).findall(f"{ATOM}entry")
    assert entry.findtext(f"{ATOM}title", "").startswith("Paiement indisponible[31m")
    assert "Désolés" in entry.findtext(f"{ATOM}content", "")
    for path in (f"/incidents/{incident_id}", "/status"):
        page = await client.get(path, headers={"Accept-Language": "fr"})
        assert page.status_code == 200
        assert "\x07" not in page.text and "\x00" not in page.text and "\x1b" not in page.text

    # A follow-up renders the stored title for every channel: the control characters stay behind.
    published = await follow_up(sessions, settings, incident_id, draft("identified", FR_OPEN, EN_OPEN))
    async with sessions() as session:
        rows = await session.exec(select(Rendition).where(Rendition.update_id == published.update.id))
        payloads = [r.payload for r in rows]
    assert any("Paiement indisponible" in p for p in payloads)
    assert not any("\\u0007" in p or "\\u001b" in p for p in payloads)


@pytest.mark.parametrize("incident_id", ["99999999999999999999", "9223372036854775808", "0", "-1"])
async def test_an_id_no_row_can_have_is_a_404_page_not_a_crash(
    client: httpx.AsyncClient, incident_id: str
) -> None:
    response = await client.get(f"/incidents/{incident_id}")
    assert response.status_code == 404 and response.headers["content-type"].startswith("text/html")
