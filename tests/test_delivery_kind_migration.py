"""Migration 0014: each outbox row written before it gets its kind from what it held."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from sqlalchemy import create_engine, text

from broadcaster.db import alembic_config, upgrade

_ROW = (
    "INSERT INTO delivery (id, update_id, message_id, channel, target, locale, payload, reply, status,"
    " attempts, next_attempt_at, claim_token, last_error, provider_message_id, created_at)"
    " VALUES (:id, :update_id, :message_id, 'email', :target, 'fr', '', '{}', 'sent', 1,"
    " '2026-12-01 10:00:00', '', '', '', '2026-12-01 10:00:00')"
)


def test_rows_written_before_it_are_told_apart_by_what_they_held(tmp_path: Path) -> None:
    path = tmp_path / "before.db"
    url = f"sqlite+aiosqlite:///{path}"
    command.upgrade(alembic_config(url), "0013")
    engine = create_engine(f"sqlite:///{path}")  # foreign keys unchecked: the rows alone matter here
    with engine.begin() as connection:
        connection.execute(text(_ROW), {"id": 1, "update_id": 7, "message_id": None, "target": "a@x.example"})
        connection.execute(text(_ROW), {"id": 2, "update_id": None, "message_id": 9, "target": "b@x.example"})
        connection.execute(text(_ROW), {"id": 3, "update_id": 7, "message_id": 10, "target": "c@x.example"})
        connection.execute(
            text(_ROW), {"id": 4, "update_id": None, "message_id": None, "target": "d@x.example"}
        )
    upgrade(url)
    with engine.connect() as connection:
        kinds = dict(connection.execute(text("SELECT id, kind FROM delivery ORDER BY id")).all())
    engine.dispose()
    assert kinds == {1: "broadcast", 2: "answer", 3: "answer", 4: "alert"}
