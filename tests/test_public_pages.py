"""The pages every message links to: /status, /incidents/<id> and /feed.atom."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import httpx
import pytest

from broadcaster.db import SessionFactory
from broadcaster.web import create_app
from tests.conftest import make_settings
from tests.e2e.helpers import draft, follow_up, open_, resolve

ATOM = "{http://www.w3.org/2005/Atom}"
FR_OPEN = "Le paiement échoue pour une partie d'entre vous. Désolés, on enquête. <script>alert(1)</script>"
EN_OPEN = "Payment fails for some of you. Sorry, we are investigating."


@pytest.fixture
async def client(database_url: str) -> httpx.AsyncClient:
    app = create_app(make_settings(database_url), dispatch=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as c:
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


@pytest.mark.parametrize("incident_id", ["99999999999999999999", "9223372036854775808", "0", "-1"])
async def test_an_id_no_row_can_have_is_a_404_page_not_a_crash(
    client: httpx.AsyncClient, incident_id: str
) -> None:
    response = await client.get(f"/incidents/{incident_id}")
    assert response.status_code == 404 and response.headers["content-type"].startswith("text/html")
