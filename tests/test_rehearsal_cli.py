"""`broadcaster incident list` shows incidents only (maintenance windows have `maintenance list`), and
`broadcaster incident delete` removes a rehearsal after asking (issue #10, item 8)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from typer.testing import CliRunner

from broadcaster.cli import app
from broadcaster.models import utcnow

runner = CliRunner()


def _invoke(*args: str, stdin: str | None = None) -> tuple[int, str]:
    result = runner.invoke(app, list(args), input=stdin)
    return result.exit_code, result.output


def _open(title: str) -> None:
    code, output = _invoke("incident", "open", "--title", title, "-c", "checkout", "-m",
                           "Le paiement échoue. Désolés, nous enquêtons.", "--force", "--json")  # fmt: skip
    assert code == 0, output


def test_incident_list_shows_incidents_and_not_maintenances(workdir: Path) -> None:
    day = (utcnow() + timedelta(days=3)).date().isoformat()
    code, output = _invoke("maintenance", "schedule", "--title", "Mise à jour du paiement",
                           "--starts", f"{day}T02:00", "--ends", f"{day}T04:00", "-c", "checkout",
                           "-m", "Nous mettons à jour le paiement.")  # fmt: skip
    assert code == 0, output
    _open("Paiement indisponible")
    for flags in ((), ("--all",)):
        code, output = _invoke("incident", "list", *flags)
        assert "Paiement indisponible" in output and "Mise à jour du paiement" not in output
        listed = json.loads(_invoke("incident", "list", *flags, "--json")[1])
        assert [(i["title"], i["kind"]) for i in listed] == [("Paiement indisponible", "incident")]
    assert "Mise à jour du paiement" in _invoke("maintenance", "list")[1]


def test_incident_delete_asks_first_and_says_what_went(workdir: Path) -> None:
    _open("Exercice")
    code, output = _invoke("incident", "delete", "1")  # no stdin: nobody to answer
    assert code == 2
    assert output.strip().splitlines()[-1] == (
        "error: incident delete 1: no answer to the confirmation (no terminal?); nothing deleted. "
        "Add --yes to delete without asking"
    )
    code, output = _invoke("incident", "delete", "1", stdin="n\n")
    assert code == 1 and "Nothing deleted." in output
    assert json.loads(_invoke("incident", "list", "--json")[1])[0]["title"] == "Exercice"
    code, output = _invoke("incident", "delete", "1", stdin="y\n")
    assert code == 0, output
    assert "Delete incident #1 «Exercice»: 1 update(s), 4 delivery row(s), 4 captured message(s)" in output
    assert "Deleted incident #1 «Exercice»" in output
    assert json.loads(_invoke("incident", "list", "--all", "--json")[1]) == []
    assert json.loads(_invoke("captured", "--json")[1]) == []

    _open("Deuxième exercice")
    code, output = _invoke("incident", "delete", "1", "--yes", "--json")
    assert code == 0, output
    assert json.loads(output) == {
        "incident_id": 1, "kind": "incident", "title": "Deuxième exercice", "updates": 1, "deliveries": 4,
        "captured": 4, "scheduled_runs": 0, "conversations": 0, "deleted": True,
    }  # fmt: skip
    code, output = _invoke("incident", "delete", "1", "--yes")
    assert code == 2 and "no incident #1" in output
