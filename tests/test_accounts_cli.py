"""`broadcaster users|tokens|audit` as an operator runs them, and who the audit log says acted."""

from __future__ import annotations

import getpass
import json
import re
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from broadcaster.cli import app

runner = CliRunner()
GOOD = "Le paiement échoue pour une partie des clients. Nous sommes désolés, nous enquêtons."


def ok(*args: str, env: dict[str, str] | None = None) -> str:
    result = runner.invoke(app, list(args), env=env)
    assert result.exit_code == 0, result.output
    return result.output


def audit_rows(workdir: Path) -> list[tuple[str, str, str, str]]:
    with sqlite3.connect(workdir / "data" / "broadcaster.db") as db:
        return db.execute("SELECT actor, action, object, summary FROM audit_event ORDER BY id").fetchall()


def test_init_creates_the_first_admin_once_with_a_set_up_link(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "200")
    first = ok("init", "--admin-email", "ops@shop.example")
    assert "First admin: ops@shop.example" in first
    assert re.search(r"http://127\.0\.0\.1:8080/setup/[A-Za-z0-9_-]{43}", first)
    again = ok("init")
    assert "First admin" not in again and "/setup/" not in again
    listed = json.loads(ok("users", "list", "--json"))
    assert [(u["email"], u["role"], u["two_factor"]) for u in listed] == [
        ("ops@shop.example", "admin", False)
    ]


def test_users_are_added_changed_and_disabled_and_each_change_is_audited(workdir: Path) -> None:
    added = ok("users", "add", "Lea@Shop.Example", "--role", "agent", "--name", "Léa", "--locale", "fr")
    assert "Added lea@shop.example (agent)" in added and "/setup/" in added
    duplicate = runner.invoke(app, ["users", "add", "lea@shop.example", "--role", "agent"])
    assert duplicate.exit_code == 2 and "already a staff user" in duplicate.output
    wrong_role = runner.invoke(app, ["users", "add", "x@shop.example", "--role", "owner"])
    assert wrong_role.exit_code == 2 and "admin, editor, agent, viewer" in wrong_role.output
    assert "lea@shop.example is now editor" in ok("users", "set-role", "lea@shop.example", "editor")
    assert "disabled" in ok("users", "disable", "lea@shop.example")
    table = ok("users", "list")
    assert "lea@shop.example" in table and "disabled" in table
    ok("users", "enable", "lea@shop.example")
    assert "/setup/" in ok("users", "reset-password", "lea@shop.example")
    ok("users", "reset-2fa", "lea@shop.example")
    unknown = runner.invoke(app, ["users", "disable", "nobody@shop.example"])
    assert unknown.exit_code == 2 and "no staff user" in unknown.output

    me = f"cli:{getpass.getuser()}"
    lea = [(actor, action) for actor, action, obj, _ in audit_rows(workdir) if obj == "user:lea@shop.example"]
    assert lea == [
        (me, "user.add"), (me, "user.set_role"), (me, "user.disable"), (me, "user.enable"),
        (me, "user.reset_password"), (me, "user.reset_2fa"),
    ]  # fmt: skip


def test_a_token_is_shown_once_scoped_at_most_to_its_owner_and_revoked(workdir: Path) -> None:
    ok("users", "add", "prometheus@shop.example", "--role", "viewer")
    wider = runner.invoke(
        app, ["tokens", "create", "prometheus@shop.example", "--name", "x", "--role", "admin"]
    )
    assert wider.exit_code == 2 and "wider than" in wider.output
    created = json.loads(
        ok("tokens", "create", "prometheus@shop.example", "--name", "scraper", "--expires", "90d", "--json")
    )
    secret = created["token"]
    assert secret.startswith(f"bc_{created['id']}_") and created["role"] == "viewer" and created["expires_at"]
    listed = ok("tokens", "list")
    assert "scraper" in listed and "live" in listed and secret not in listed
    assert secret not in json.dumps(json.loads(ok("tokens", "list", "--json")))
    assert "revoked" in ok("tokens", "revoke", str(created["id"]))
    assert "revoked" in ok("tokens", "list")
    for row in audit_rows(workdir):
        assert secret not in " ".join(row) and secret.split("_")[-1] not in " ".join(row)


def test_cli_changes_name_the_unix_user_and_the_person_they_claim_to_be(workdir: Path) -> None:
    ok("--as", "camille@shop.example", "incident", "open", "--title", "Paiement indisponible",
       "--component", "payment", "--message", GOOD, "--impact", "major", "--no-wait")  # fmt: skip
    ok("users", "add", "theo@shop.example", "--role", "viewer", env={"BROADCASTER_USER": "ana@shop.example"})
    rows = audit_rows(workdir)
    me = f"cli:{getpass.getuser()}"
    (opened,) = [r for r in rows if r[1] == "incident.open"]
    assert opened[0] == f"camille@shop.example ({me})" and opened[2] == "incident:1"
    assert opened[3].startswith("investigating, ") and "deliveries" in opened[3]
    (added,) = [r for r in rows if r[2] == "user:theo@shop.example"]
    assert added[0] == f"ana@shop.example ({me})"

    shown = json.loads(ok("audit", "--json", "--object", "incident:1"))
    assert [e["action"] for e in shown] == ["incident.open"]
    assert json.loads(ok("audit", "--json", "--actor", "ana@", "--since", "1h"))[0]["action"] == "user.add"
    assert ok("audit", "--since", "2026-01-01T00:00").count("incident.open") == 1
    bad = runner.invoke(app, ["audit", "--since", "yesterday"])
    assert bad.exit_code == 2 and "--since 'yesterday'" in bad.output


def test_a_forced_publication_keeps_what_it_overrode_in_the_audit_log(workdir: Path) -> None:
    blame = "Le paiement échoue. Vérifiez votre connexion, nous enquêtons."
    ok("incident", "open", "--title", "Paiement", "--component", "payment", "--message", blame,
       "--impact", "major", "--force", "--reason", "the CEO's wording, approved", "--no-wait")  # fmt: skip
    (opened,) = [r for r in audit_rows(workdir) if r[1] == "incident.open"]
    assert "forced past" in opened[3] and "blame" in opened[3]
    assert opened[3].endswith("because: the CEO's wording, approved")
