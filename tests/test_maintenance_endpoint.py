"""`/maintenance` for the reverse proxy: 200 before, 503 + exact Retry-After during, 200 after."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
from fastapi import FastAPI

from broadcaster.config import Settings
from broadcaster.db import SessionFactory
from broadcaster.publishing.maintenance import (
    complete_maintenance,
    complete_maintenance_now,
    reschedule_maintenance,
    schedule_maintenance,
    start_maintenance,
)
from broadcaster.web import create_app
from broadcaster.web.maintenance import OVERDUE_RETRY_SECONDS, maintenance_router
from tests.conftest import make_settings
from tests.served import served

NOW = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
START = datetime(2026, 11, 25, 1, 0, tzinfo=UTC)  # 02:00 in Paris
END = START + timedelta(hours=2, minutes=30)
TEXT = {"fr": "Nous mettons à jour le paiement.", "en": "We are upgrading checkout."}


def _visible(page: str) -> str:
    """The page's text as a browser shows it (times are `<time>` elements)."""
    return re.sub(r"<[^>]+>", "", page)


def _client(settings: Settings, sessions: SessionFactory, clock: Callable[[], datetime]) -> httpx.AsyncClient:
    app = FastAPI()
    app.include_router(maintenance_router(settings, sessions, clock=clock))
    return served(app, "http://shop")


async def test_200_before_503_with_retry_after_during_200_after(
    database_url: str, sessions: SessionFactory
) -> None:
    settings = make_settings(database_url)
    now = [NOW]
    async with sessions() as session:
        incident = await schedule_maintenance(
            session, settings, title="Mise à jour", starts_at=START, ends_at=END,
            components=["checkout"], message=TEXT, author="cm", now=NOW,
        )  # fmt: skip
    assert incident.id is not None
    async with _client(settings, sessions, lambda: now[0]) as client:
        before = await client.get("/maintenance")
        assert before.status_code == 200 and "Retry-After" not in before.headers
        assert "aucune maintenance en cours" in before.text

        now[0] = START
        async with sessions() as session:
            await start_maintenance(session, settings, incident.id, START)
        now[0] = START + timedelta(minutes=30, seconds=0.4)
        during = await client.get("/maintenance", headers={"Accept-Language": "en-GB,en;q=0.9,fr;q=0.5"})
        assert during.status_code == 503
        assert during.headers["Retry-After"] == str(2 * 3600)  # 7199.6 s, rounded up to whole seconds
        assert during.headers["Cache-Control"] == "no-store"
        assert during.headers["Content-Language"] == "en"
        assert "Maison Exemple is under maintenance. We will be back around 4:30" in _visible(during.text)
        assert f'href="{settings.status_url}"' in during.text
        french = await client.get("/maintenance")
        assert "de retour vers 4\u00a0h\u00a030" in _visible(french.text) and 'lang="fr"' in french.text
        head = await client.head("/maintenance")
        assert head.status_code == 503 and head.headers["Retry-After"] == str(2 * 3600)
        # A proxy in front of another component only keeps serving.
        assert (await client.get("/maintenance", params={"component": "website"})).status_code == 200
        assert (await client.get("/maintenance", params={"component": "checkout"})).status_code == 503

        # Extended: the old end passes, the page still says 503 with the new end.
        async with sessions() as session:
            await reschedule_maintenance(
                session, settings, incident.id, ends_at=END + timedelta(hours=1), now=now[0], author="cm"
            )
        now[0] = END + timedelta(minutes=10)
        extended = await client.get("/maintenance")
        assert extended.status_code == 503 and extended.headers["Retry-After"] == str(50 * 60)

        # Overdue (end passed, nobody closed it yet): a short retry, never 0 nor negative.
        now[0] = END + timedelta(hours=1, minutes=5)
        overdue = await client.get("/maintenance")
        assert overdue.status_code == 503 and overdue.headers["Retry-After"] == str(OVERDUE_RETRY_SECONDS)

        async with sessions() as session:
            await complete_maintenance(session, settings, incident.id, now[0])
        after = await client.get("/maintenance")
        assert after.status_code == 200 and "Retry-After" not in after.headers


async def test_completed_early_answers_200_at_once(database_url: str, sessions: SessionFactory) -> None:
    settings = make_settings(database_url)
    now = [START + timedelta(minutes=20)]
    async with sessions() as session:
        incident = await schedule_maintenance(
            session, settings, title="Mise à jour", starts_at=START, ends_at=END,
            components=["checkout"], message=TEXT, author="cm", now=NOW,
        )  # fmt: skip
        assert incident.id is not None
        await start_maintenance(session, settings, incident.id, START)
    async with _client(settings, sessions, lambda: now[0]) as client:
        assert (await client.get("/maintenance")).status_code == 503
        async with sessions() as session:  # two hours before the planned end
            await complete_maintenance_now(session, settings, incident.id, now=now[0], author="cm")
        after = await client.get("/maintenance")
        assert after.status_code == 200 and "Retry-After" not in after.headers
        assert "aucune maintenance en cours" in after.text


async def test_the_service_app_serves_the_endpoint(database_url: str) -> None:
    app = create_app(make_settings(database_url), dispatch=False)
    async with served(app, "http://shop") as client:
        response = await client.get("/maintenance")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
