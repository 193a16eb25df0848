"""`broadcaster schedule` and `/api/v1/schedule`: what is pending, for people and for scripts."""

from __future__ import annotations

import json
from pathlib import Path

from fastapi import FastAPI
from typer.testing import CliRunner

from broadcaster.cli import app
from broadcaster.db import SessionFactory
from broadcaster.web.schedule_api import schedule_router
from broadcaster.web.staff_gate import StaffGate
from tests.conftest import make_settings
from tests.served import served
from tests.staff import bearer, staff_token
from tests.test_scheduler import open_major

runner = CliRunner()


def test_the_schedule_shows_the_promise_of_an_open_incident(workdir: Path) -> None:
    assert runner.invoke(app, ["schedule"]).output.strip() == "Nothing scheduled."
    message = "Le paiement échoue. Nous sommes désolés, nous enquêtons."
    opened = runner.invoke(app, ["incident", "open", "--title", "Paiement indisponible", "--component",
                                 "payment", "--message", message, "--impact", "critical", "--force",
                                 "--no-wait"])  # fmt: skip
    assert opened.exit_code == 0, opened.output
    table = runner.invoke(app, ["schedule"])
    assert table.exit_code == 0 and "staff reminder" in table.output and "holding message" in table.output
    assert "Paiement indisponible" in table.output
    listed = json.loads(runner.invoke(app, ["schedule", "--json"]).output)
    assert [job["kind"] for job in listed["pending"]] == ["reminder", "holding"]
    assert listed["missed"] == []


async def test_the_schedule_api_needs_the_staff_token(database_url: str, sessions: SessionFactory) -> None:
    settings = make_settings(database_url)
    incident = await open_major(sessions, settings)
    token = await staff_token(sessions, "viewer")
    web = FastAPI()
    web.include_router(schedule_router(settings, sessions, StaffGate(settings, sessions)))
    async with served(web) as client:
        assert (await client.get("/api/v1/schedule")).status_code == 401
        found = await client.get("/api/v1/schedule", headers=bearer(token))
    assert found.status_code == 200
    assert [(job["incident_id"], job["kind"]) for job in found.json()["pending"]] == [
        (incident.id, "reminder"),
        (incident.id, "holding"),
    ]
