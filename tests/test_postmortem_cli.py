"""`broadcaster incident postmortem` as a user runs it: draft, edit in a file, save, publish on the blog.

Every channel is in capture mode (the example config): publishing delivers for real, locally.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from typer.testing import CliRunner

from broadcaster.cli import app
from broadcaster.publishing.postmortem import PLACEHOLDERS
from channels.blog.markup import markdown_text

runner = CliRunner()
OPENING = "Le paiement échoue pour une partie des clients. Nous sommes désolés, nous enquêtons."
CAUSE = "Un certificat expiré chez notre prestataire de paiement. <script>alert('x')</script>"
CHANGES = "Une alerte nous préviendra trente jours avant chaque expiration."


def invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def query(workdir: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(workdir / "data" / "broadcaster.db") as db:
        return list(db.execute(sql).fetchall())


def open_incident() -> None:
    code, output = invoke(
        "incident", "open", "--title", "Paiement indisponible", "-c", "checkout", "-m", OPENING,
        "--eta", "30m", "--next-update", "20m",
    )  # fmt: skip
    assert code == 0, output


def resolve() -> None:
    code, output = invoke("incident", "resolve", "1", "-m", "Tout fonctionne. Merci pour votre patience.")
    assert code == 0, output


def test_draft_edit_in_a_file_then_publish_once(workdir: Path) -> None:
    open_incident()
    code, output = invoke("incident", "postmortem", "1")
    assert code == 2 and "incident #1 is not resolved yet (it is investigating)" in output
    code, output = invoke("incident", "postmortem", "99")
    assert code == 2 and "no incident #99" in output
    resolve()

    code, output = invoke("incident", "postmortem", "1", "--publish")
    assert code == 2 and "still has a placeholder for: cause, changes" in output
    assert query(workdir, "SELECT postmortem FROM incident") == [(None,)]  # refused: nothing saved

    code, output = invoke("incident", "postmortem", "1", "--json")
    assert code == 0, output
    drafted = json.loads(output)
    assert drafted["incident_id"] == 1 and PLACEHOLDERS["fr"]["cause"] in drafted["markdown"]
    edited = (
        drafted["markdown"]
        .replace(PLACEHOLDERS["fr"]["cause"], CAUSE)
        .replace(PLACEHOLDERS["fr"]["changes"], CHANGES)
    )
    (workdir / "report.md").write_text(edited, encoding="utf-8")
    code, output = invoke("incident", "postmortem", "1", "--from-file", "report.md", "--json")
    assert code == 0, output
    assert json.loads(output)["markdown"] == edited
    assert query(workdir, "SELECT postmortem FROM incident") == [(edited,)]

    code, output = invoke("incident", "postmortem", "1", "--publish", "--json")
    assert code == 0, output
    published = json.loads(output)
    assert published["deliveries"] == {"blog": {"captured": 1}} and published["status"] == "resolved"
    ((title, body, html),) = query(
        workdir,
        "SELECT title, body, html FROM captured_message WHERE channel = 'blog' AND title LIKE 'Rapport%'",
    )
    assert title == "Rapport d'incident : Paiement indisponible"
    assert markdown_text(CAUSE) in body and markdown_text(CHANGES) in body  # escaped for Hugo/Jekyll
    assert "&lt;script&gt;" in html and "<script>" not in html  # staff text stays text on the blog
    shown = json.loads(invoke("incident", "show", "1", "--json")[1])
    assert [u["kind"] for u in shown["updates"]] == ["update", "resolved", "postmortem"]

    code, output = invoke("incident", "postmortem", "1", "--publish")
    assert code == 2 and "already published; use --force" in output
    code, output = invoke("incident", "postmortem", "1", "--publish", "--force", "--no-wait", "--json")
    assert code == 0 and json.loads(output)["deliveries"] == {"blog": 1}


def test_publish_with_the_staff_words_drafts_saves_and_publishes(workdir: Path) -> None:
    open_incident()
    resolve()
    code, output = invoke(
        "incident", "postmortem", "1", "--cause", CAUSE, "--changes", CHANGES, "--locale", "en",
        "--publish", "--json",
    )  # fmt: skip
    assert code == 0, output
    assert json.loads(output)["deliveries"] == {"blog": {"captured": 1}}
    ((saved,),) = query(workdir, "SELECT postmortem FROM incident")
    assert isinstance(saved, str) and saved.startswith("# Incident report: Paiement indisponible")
    assert f"## Cause\n\n{CAUSE}" in saved and f"## What we change\n\n{CHANGES}" in saved


def test_printed_draft_and_bad_files(workdir: Path) -> None:
    open_incident()
    resolve()
    code, output = invoke("incident", "postmortem", "1", "--cause", CAUSE, "--changes", CHANGES)
    assert code == 0, output
    assert "Rapport d'incident : Paiement indisponible" in output and "Chronologie" in output
    assert "broadcaster incident postmortem 1 --publish" in output
    code, output = invoke("incident", "postmortem", "1", "--from-file", "missing.md")
    assert code == 2 and "--from-file missing.md: no such file" in output
    (workdir / "empty.md").write_text("\n  \n", encoding="utf-8")
    code, output = invoke("incident", "postmortem", "1", "--from-file", "empty.md", "--publish")
    assert code == 2 and "--from-file empty.md: the file is empty" in output
    (workdir / "latin1.md").write_bytes("Résumé".encode("latin-1"))
    code, output = invoke("incident", "postmortem", "1", "--from-file", "latin1.md")
    assert code == 2 and "not UTF-8 text" in output
    assert query(workdir, "SELECT count(*) FROM incident_update WHERE kind = 'postmortem'") == [(0,)]
