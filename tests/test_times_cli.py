"""Times in the CLI (issue #10, items 9, 10 and 12): no promise in the past, and one time zone —
the brand's — everywhere a person reads a time (`--json` keeps ISO 8601 for scripts)."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from typer.testing import CliRunner

from broadcaster.cli import app
from tests.test_cli import rows
from tests.test_inbox_actions import AT, customer_writes, inbound
from tests.test_inbox_cli import with_sessions

runner = CliRunner()
PARIS = ZoneInfo("Europe/Paris")
GOOD = "Le paiement échoue pour une partie des clients. Nous sommes désolés, nous enquêtons."
NOW_IN_PARIS = re.compile(r"\(it is now \d{1,2} \S+ \d{2}:\d{2}, Europe/Paris\)")


def _paris(days: float, hour: int) -> str:
    """A naive ISO time as a user types it, read in the brand's zone, `days` from today."""
    return f"{(datetime.now(PARIS) + timedelta(days=days)).date().isoformat()}T{hour:02d}:00"


def _local(iso_time: str) -> str:
    return datetime.fromisoformat(iso_time).astimezone(PARIS).strftime("%Y-%m-%d %H:%M")


def _open(*extra: str) -> dict[str, object]:
    result = runner.invoke(app, ["incident", "open", "--title", "Paiement indisponible", "-c", "checkout",
                                 "-m", GOOD, "--no-wait", "--json", *extra])  # fmt: skip
    assert result.exit_code == 0, result.output
    return dict(json.loads(result.output))


def _schedule(starts: str, ends: str) -> list[str]:
    return ["maintenance", "schedule", "--title", "Mise à jour", "--starts", starts, "--ends", ends,
            "-c", "checkout", "-m", "Nous mettons à jour le paiement."]  # fmt: skip


PAST = _paris(-1, 10)


@pytest.mark.parametrize(
    ("command", "option"),
    [
        (["incident", "open", "--title", "Paiement", "-c", "checkout", "-m", GOOD, "--eta", PAST], "--eta"),
        (["incident", "open", "--title", "Paiement", "-c", "checkout", "-m", GOOD, "--next-update", PAST],
         "--next-update"),
        (["incident", "update", "1", "--status", "identified", "-m", GOOD, "--eta", PAST], "--eta"),
        (["incident", "update", "1", "--status", "identified", "-m", GOOD, "--next-update", PAST],
         "--next-update"),
        (["incident", "publish", "1", "-m", GOOD, "--eta", PAST], "--eta"),
        (["preview", "-c", "checkout", "-m", GOOD, "--next-update", PAST], "--next-update"),
        (_schedule(PAST, _paris(3, 4)), "--starts"),
        (["maintenance", "reschedule", "2", "--ends", PAST], "--ends"),
    ],
)  # fmt: skip
def test_a_promise_in_the_past_is_refused_with_the_time_as_typed(
    workdir: Path, command: list[str], option: str
) -> None:
    _open()
    assert runner.invoke(app, _schedule(_paris(3, 2), _paris(3, 4))).exit_code == 0
    before = (rows(workdir, "incident"), rows(workdir, "incident_update"), rows(workdir, "delivery"))
    result = runner.invoke(app, command)
    assert result.exit_code == 2, result.output
    (line,) = result.output.strip().splitlines()
    assert line.startswith(f"error: {option} {PAST}: this time is in the past "), line
    assert NOW_IN_PARIS.search(line), line
    assert "UTC" not in line and "+00:00" not in line
    assert (rows(workdir, "incident"), rows(workdir, "incident_update"), rows(workdir, "delivery")) == before


def test_a_future_clock_time_and_a_duration_are_accepted(workdir: Path) -> None:
    opened = _open("--eta", "1h", "--next-update", _paris(1, 9))
    assert opened["incident_id"] == 1


def test_a_maintenance_window_error_shows_the_brands_clock(workdir: Path) -> None:
    result = runner.invoke(app, _schedule(_paris(3, 4), _paris(3, 2)))
    assert result.exit_code == 2
    day = re.escape(str(int(_paris(3, 4)[8:10])))
    assert re.search(
        rf"--ends {day} \S+ 02:00 must be after --starts {day} \S+ 04:00 \(Europe/Paris\)", result.output
    )
    assert "+00:00" not in result.output


def test_every_time_a_person_reads_is_on_the_brands_clock(workdir: Path) -> None:
    opened = _open("--eta", "2h", "--next-update", "1h")
    shown = json.loads(runner.invoke(app, ["incident", "show", "1", "--json"]).output)
    (update,) = shown["updates"]
    assert update["created_at"].endswith("+00:00")  # scripts keep ISO 8601 with its offset

    listed = runner.invoke(app, ["incident", "list"]).output
    assert "Open incidents and drafts (Europe/Paris)" in listed and "UTC" not in listed
    assert _local(str(shown["created_at"])) in listed and _local(update["next_update_at"]) in listed
    timeline = runner.invoke(app, ["incident", "show", str(opened["incident_id"])]).output
    assert "Timeline (Europe/Paris)" in timeline and "UTC" not in timeline
    for moment in ("created_at", "eta_at", "next_update_at"):
        assert _local(update[moment]) in timeline

    url = f"sqlite+aiosqlite:///{workdir / 'data' / 'broadcaster.db'}"
    (cid,) = with_sessions(
        url, lambda s: customer_writes(s, inbound("42:1", "le site est en panne ?", key="42"))
    )
    thread = runner.invoke(app, ["inbox", "show", str(cid)]).output
    assert "times in Europe/Paris" in thread
    assert f"{AT.astimezone(PARIS):%Y-%m-%d %H:%M} ←" in thread  # 14:00 in Paris, not 13:00 UTC

    assert "Scheduled jobs (Europe/Paris)" in runner.invoke(app, ["schedule"]).output


def test_init_without_a_config_file_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("BROADCASTER_CONFIG", raising=False)
    monkeypatch.setenv("COLUMNS", "200")
    result = runner.invoke(app, ["init"])
    assert result.exit_code == 0, result.output
    assert "Channels (no config file: built-in defaults)" in result.output
    assert "((defaults))" not in result.output
    (tmp_path / "config.toml").write_text("", encoding="utf-8")
    assert "Channels (config.toml)" in runner.invoke(app, ["init"]).output
