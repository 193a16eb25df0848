"""`serve`'s parts start in order and stop in reverse, even when one of them cannot start."""

from __future__ import annotations

import socket
import threading

import pytest

from broadcaster.web.app import create_app
from tests.conftest import make_settings


def _scheduler_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "scheduler" and t.is_alive()]


async def test_a_part_that_cannot_start_stops_the_ones_started_before_it(database_url: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        email = {"inbound_enabled": True, "inbound_host": "127.0.0.1", "inbound_port": port}
        settings = make_settings(database_url, channels={"email": email})
        app = create_app(settings)
        before = len(_scheduler_threads())
        with pytest.raises(OSError):
            async with app.router.lifespan_context(app):
                pytest.fail("the SMTP listener started on a port already taken")
    assert len(_scheduler_threads()) == before  # the scheduler started first, and was stopped


async def test_the_service_starts_and_stops_every_part(database_url: str) -> None:
    app = create_app(make_settings(database_url))
    before = len(_scheduler_threads())
    async with app.router.lifespan_context(app):
        assert len(_scheduler_threads()) == before + 1
    assert len(_scheduler_threads()) == before
