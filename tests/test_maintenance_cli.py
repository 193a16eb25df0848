"""`broadcaster maintenance schedule|reschedule|cancel|list` as a user runs them (capture mode)."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from broadcaster.cli import app
from broadcaster.compose.render import Composer
from broadcaster.config import load_settings
from broadcaster.db import create_engine, session_factory
from broadcaster.schedule.runner import Scheduler
from tests.test_cli import rows, runner

PARIS = ZoneInfo("Europe/Paris")
MESSAGE = "Nous mettons à jour le paiement pour le rendre plus rapide."


def _local(days: float, hour: int = 2) -> str:
    """A naive ISO time in the brand's zone, `days` from now."""
    day = (datetime.now(PARIS) + timedelta(days=days)).date()
    return f"{day.isoformat()}T{hour:02d}:00"


def _schedule(*extra: str) -> list[str]:
    return [
        "maintenance", "schedule", "--title", "Mise à jour du paiement",
        "--starts", _local(3), "--ends", _local(3, hour=4), "-c", "checkout", "-c", "payment",
        "-m", MESSAGE, "-t", "en:We are upgrading checkout to make it faster.", *extra,
    ]  # fmt: skip


def test_schedule_list_reschedule_cancel(workdir: Path) -> None:
    (workdir / "customers.csv").write_text(
        "email,telegram_chat_id,locale,components\na@example.com,1001,fr,checkout\nb@example.com,,en,website\n",
        encoding="utf-8",
    )
    assert runner.invoke(app, ["subscribers", "import", "customers.csv"]).exit_code == 0
    scheduled = runner.invoke(app, _schedule("--json"))
    assert scheduled.exit_code == 0, scheduled.output
    data = json.loads(scheduled.output)
    assert data["status"] == "scheduled" and data["components"] == ["checkout", "payment"]
    starts_at = datetime.fromisoformat(data["starts_at"])
    assert starts_at.astimezone(PARIS).strftime("%H:%M") == "02:00"  # naive input read in the brand's zone
    assert [n["channels"] for n in data["notices"]] == [
        ["email"],
        ["push"],
        ["twitter", "facebook", "telegram"],
    ]
    assert rows(workdir, "delivery") == 0  # the scheduler sends the notices, not `schedule`

    table = runner.invoke(app, ["maintenance", "list"])
    assert table.exit_code == 0 and "Maintenance windows" in table.output and "scheduled" in table.output
    human = runner.invoke(app, _schedule())
    assert (
        human.exit_code == 0
        and "Maintenance #2" in human.output
        and "completed: every channel" in human.output
    )

    moved = runner.invoke(
        app, ["maintenance", "reschedule", "1", "--starts", _local(4), "--ends", _local(4, hour=5), "--json"]
    )
    assert moved.exit_code == 0, moved.output
    result = json.loads(moved.output)
    assert result["status"] == "scheduled"
    # No rung of the ladder had gone out: nobody is told of the move, the plan just moves.
    assert result["notice_sent"] is False and result["deliveries"] == {} and rows(workdir, "delivery") == 0
    listed = json.loads(runner.invoke(app, ["maintenance", "list", "--json"]).output)
    first = next(m for m in listed if m["id"] == 1)
    assert datetime.fromisoformat(first["ends_at"]).astimezone(PARIS).strftime("%H:%M") == "05:00"

    cancelled = runner.invoke(app, ["maintenance", "cancel", "1", "--no-wait", "--json"])
    assert cancelled.exit_code == 0, cancelled.output
    assert json.loads(cancelled.output)["status"] == "cancelled" and rows(workdir, "delivery") == 0
    assert [m["id"] for m in json.loads(runner.invoke(app, ["maintenance", "list", "--json"]).output)] == [2]
    everything = json.loads(runner.invoke(app, ["maintenance", "list", "--all", "--json"]).output)
    assert {m["id"]: m["status"] for m in everything} == {1: "cancelled", 2: "scheduled"}
    again = runner.invoke(app, ["maintenance", "cancel", "1"])
    assert again.exit_code == 2 and "maintenance #1 is already cancelled" in again.output


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"--ends": _local(2)}, "must be after --starts"),
        ({"--starts": _local(-1), "--ends": _local(3, hour=4)}, "is in the past"),
        ({"-c": "teleporter"}, "unknown component(s): teleporter"),
        ({"--starts": "next tuesday"}, "--starts: 'next tuesday' is not a time"),
        ({"-m": "   "}, "the message in 'fr' is empty (--message)"),
    ],
)
def test_bad_input_is_one_clear_line_and_nothing_is_written(
    workdir: Path,
    change: dict[str, str],
    expected: str,
) -> None:
    args = _schedule()
    for option, value in change.items():
        args[args.index(option) + 1] = value
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert expected in result.output and "Traceback" not in result.output
    assert rows(workdir, "incident") == 0 and rows(workdir, "incident_update") == 0


def test_unknown_maintenance_is_refused(workdir: Path) -> None:
    for command in (["reschedule", "9", "--ends", _local(3)], ["cancel", "9"]):
        result = runner.invoke(app, ["maintenance", *command])
        assert result.exit_code == 2 and "no maintenance #9" in result.output


def _scheduler_at(workdir: Path, moment: datetime) -> dict[str, str]:
    """What `broadcaster serve`'s scheduler does at `moment`, on the CLI's database."""
    settings = load_settings(workdir / "config.toml")

    async def run_due() -> dict[str, str]:
        engine = create_engine(settings.database.url)
        try:
            scheduler = Scheduler(settings, session_factory(engine), Composer(), clock=lambda: moment)
            return await scheduler.run_due()
        finally:
            await engine.dispose()

    return asyncio.run(run_due())


def _subscribe(workdir: Path) -> None:
    (workdir / "customers.csv").write_text(
        "email,telegram_chat_id,locale,components\na@example.com,1001,fr,checkout\n", encoding="utf-8"
    )
    assert runner.invoke(app, ["subscribers", "import", "customers.csv"]).exit_code == 0


def test_a_change_before_the_first_notice_says_nobody_was_told(workdir: Path) -> None:
    _subscribe(workdir)
    assert runner.invoke(app, _schedule()).exit_code == 0
    moved = runner.invoke(
        app, ["maintenance", "reschedule", "1", "--starts", _local(4), "--ends", _local(4, 5)]
    )
    assert moved.exit_code == 0, moved.output
    assert "Nobody had been told yet: the plan moved, no notice sent." in moved.output
    cancelled = runner.invoke(app, ["maintenance", "cancel", "1"])
    assert cancelled.exit_code == 0, cancelled.output
    assert "cancelled" in cancelled.output
    assert "Nobody had been told yet: the plan was dropped, no notice sent." in cancelled.output
    assert rows(workdir, "delivery") == 0


def test_a_change_after_the_e_mail_notice_tells_the_e_mail_subscribers_only(workdir: Path) -> None:
    _subscribe(workdir)
    scheduled = json.loads(runner.invoke(app, _schedule("--json")).output)
    first_rung = datetime.fromisoformat(scheduled["notices"][0]["at"])
    assert _scheduler_at(workdir, first_rung) == {"notice:1:72": "done"}  # e-mail, 72 h before
    moved = runner.invoke(
        app, ["maintenance", "reschedule", "1", "--starts", _local(4), "--ends", _local(4, 5), "--json"]
    )
    assert moved.exit_code == 0, moved.output
    assert json.loads(moved.output)["deliveries"] == {"email": {"captured": 1}}  # not X, Telegram, push…


def test_complete_ends_a_running_maintenance_now(workdir: Path) -> None:
    _subscribe(workdir)
    first = json.loads(runner.invoke(app, _schedule("--json")).output)
    later = _schedule()
    later[later.index("--starts") + 1] = _local(5)
    later[later.index("--ends") + 1] = _local(5, hour=4)
    assert runner.invoke(app, later).exit_code == 0  # #2 stays scheduled
    _scheduler_at(workdir, datetime.fromisoformat(first["starts_at"]))  # #1's notices, then "started"
    listed = json.loads(runner.invoke(app, ["maintenance", "list", "--json"]).output)
    assert [m["status"] for m in listed] == ["in_progress", "scheduled"]

    # Two hours before its planned end. `--no-wait`: the notices the scheduler queued above wait for
    # `serve` (not running here), and a thread's next post waits for the previous one.
    done = runner.invoke(app, ["maintenance", "complete", "1", "--no-wait", "--json"])
    assert done.exit_code == 0, done.output
    result = json.loads(done.output)
    assert result["status"] == "completed"
    assert set(result["deliveries"]) == {"twitter", "facebook", "telegram", "email", "push", "blog"}
    again = runner.invoke(app, ["maintenance", "complete", "1"])
    assert again.exit_code == 2 and "maintenance #1 is already completed" in again.output
    planned = runner.invoke(app, ["maintenance", "complete", "2"])
    assert planned.exit_code == 2 and "maintenance #2 has not started" in planned.output
    assert "Traceback" not in planned.output and len(planned.output.strip().splitlines()) == 1
