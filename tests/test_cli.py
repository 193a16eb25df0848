"""The command line as a user runs it: clear one-line errors, nothing written on bad input."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from broadcaster.cli import app

runner = CliRunner()
GOOD = "Le paiement échoue pour une partie des clients. Nous sommes désolés, nous enquêtons."


def rows(workdir: Path, table: str) -> int:
    with sqlite3.connect(workdir / "data" / "broadcaster.db") as db:
        return int(db.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def test_init_reports_capture_mode_for_channels_without_credentials(workdir: Path) -> None:
    result = runner.invoke(app, ["init"])
    assert result.exit_code == 0
    assert "capture" in result.output and "email" in result.output


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ("[server]\nprot = 1\n", "config.toml: server.prot: unknown key"),
        ("[server]\nport = 'abc'\n", "config.toml: server.port: Input should be a valid integer"),
        (
            "[channels.telegram]\ntoken = 'env:NO_SUCH_TOKEN_VAR'\n",
            "config.toml: channels.telegram.token: environment variable NO_SUCH_TOKEN_VAR is not set",
        ),
        ("[brand\nname = 1\n", "config.toml: not valid TOML"),
        ("[components.x]\ncritical = true\n", "config.toml: components.x.label: required key is missing"),
        ("[staff]\nemail = 'oncall'\n", "config.toml: staff.email: not an e-mail address"),
        (
            "[inbox]\nspike_threshold = 0\n",
            "config.toml: inbox.spike_threshold: Input should be greater than",
        ),
        (
            "[dispatch]\nmax_pause_seconds = 0\n",
            "config.toml: dispatch.max_pause_seconds: Input should be greater than 0",
        ),
        ("[dispatch]\nmax_pause_seconds = inf\n", "config.toml: dispatch.max_pause_seconds: Input should be"),
        (
            "[channels.telegram]\nwebhook_secret = 42\n",
            "config.toml: channels.telegram.webhook_secret: Input should be a valid string (got '***')",
        ),
    ],
)
def test_bad_config_fails_with_one_line_naming_file_and_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, toml: str, expected: str
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("BROADCASTER_CONFIG", raising=False)
    (tmp_path / "config.toml").write_text(toml, encoding="utf-8")
    result = runner.invoke(app, ["--config", "config.toml", "init"])
    assert result.exit_code == 2
    assert expected in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "data").exists()  # nothing written


def test_secret_values_never_appear_in_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SMTP_PW", "hunter2-very-secret")
    (tmp_path / "config.toml").write_text(
        "[channels.email]\npassword = 'env:SMTP_PW'\nport = 'not-a-port'\n", encoding="utf-8"
    )
    result = runner.invoke(app, ["--config", "config.toml", "init"])
    assert result.exit_code == 2
    assert "hunter2" not in result.output


def test_csv_import_with_bad_lines_imports_nothing_and_lists_every_bad_line(workdir: Path) -> None:
    (workdir / "customers.csv").write_text(
        "email,telegram_chat_id,locale,components\n"
        "ok@example.com,,fr,checkout\n"
        "not-an-email,,fr,\n"
        ",12ab,en,\n"
        "x@example.com,,fr,teleportation\n"
        ",,fr,\n",
        encoding="utf-8",
    )
    result = runner.invoke(app, ["subscribers", "import", "customers.csv"])
    assert result.exit_code == 2
    for line in ("line 3", "line 4", "line 5", "line 6"):
        assert line in result.output
    assert "line 2" not in result.output
    assert "teleportation" in result.output
    assert rows(workdir, "subscription") == 0


def test_a_chat_id_in_other_scripts_digits_is_refused(workdir: Path) -> None:
    """`int("١٢٣")` is 123: only ASCII digits name a Telegram chat."""
    (workdir / "customers.csv").write_text(
        "email,telegram_chat_id,locale,components\n,١٢٣,fr,\n,１２３,fr,\n", encoding="utf-8"
    )
    result = runner.invoke(app, ["subscribers", "import", "customers.csv"])
    assert result.exit_code == 2 and "line 2" in result.output and "line 3" in result.output
    assert rows(workdir, "subscription") == 0


def test_csv_import_then_list_as_json(workdir: Path) -> None:
    (workdir / "customers.csv").write_text(
        "email,telegram_chat_id,locale,components\na@example.com,1001,fr,checkout;payment\nb@example.com,,en,\n",
        encoding="utf-8",
    )
    result = runner.invoke(app, ["subscribers", "import", "customers.csv"])
    assert result.exit_code == 0, result.output
    assert "Imported 2 subscriber(s), 3 subscription(s)" in result.output
    again = runner.invoke(app, ["subscribers", "import", "customers.csv"])
    assert "3 already subscribed" in again.output
    listed = json.loads(runner.invoke(app, ["subscribers", "list", "--json"]).output)
    assert {(s["channel"], s["address"]) for s in listed} == {
        ("email", "a@example.com"),
        ("telegram", "1001"),
        ("email", "b@example.com"),
    }
    assert listed[0]["components"] == ["checkout", "payment"]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--component", "teleporter", "--message", GOOD], "unknown component(s): teleporter"),
        (["--component", "checkout", "--message", "   "], "the message is empty"),
        (["--component", "checkout", "--message", GOOD, "--eta", "soon"], "'soon' is not a time"),
        (["--component", "checkout", "--message", GOOD, "--impact", "apocalyptic"], "unknown impact"),
    ],
)
def test_bad_incident_input_is_refused_and_nothing_is_written(
    workdir: Path, args: list[str], expected: str
) -> None:
    result = runner.invoke(app, ["incident", "open", "--title", "Paiement", *args])
    assert result.exit_code == 2
    assert expected in result.output
    assert rows(workdir, "incident") == 0
    assert rows(workdir, "delivery") == 0


def test_lint_errors_refuse_publication_unless_forced(workdir: Path) -> None:
    blaming = "Le paiement échoue. Vérifiez votre connexion, c'est garanti que tout revient."
    refused = runner.invoke(app, ["incident", "open", "--title", "Paiement", "-c", "checkout", "-m", blaming])
    assert refused.exit_code == 2
    assert "blame" in refused.output and "--force" in refused.output
    assert rows(workdir, "incident") == 0
    forced = runner.invoke(
        app, ["incident", "open", "--title", "Paiement", "-c", "checkout", "-m", blaming, "--force", "--json"]
    )
    assert forced.exit_code == 0, forced.output
    assert rows(workdir, "incident") == 1


def test_open_update_resolve_and_deliveries_in_capture_mode(workdir: Path) -> None:
    (workdir / "customers.csv").write_text(
        "email,telegram_chat_id,locale,components\na@example.com,1001,fr,\nb@example.com,,en,\n",
        encoding="utf-8",
    )
    assert runner.invoke(app, ["subscribers", "import", "customers.csv"]).exit_code == 0
    opened = runner.invoke(
        app,
        [
            "incident",
            "open",
            "--title",
            "Paiement indisponible",
            "--impact",
            "major",
            "-c",
            "checkout",
            "-m",
            GOOD,
            "--eta",
            "30m",
            "--next-update",
            "20m",
            "--json",
        ],
    )
    assert opened.exit_code == 0, opened.output
    data = json.loads(opened.output)
    assert data["deliveries"] == {
        c: {"captured": n}
        for c, n in {"blog": 1, "email": 2, "facebook": 1, "push": 1, "telegram": 1, "twitter": 1}.items()
    }
    updated = runner.invoke(
        app,
        [
            "incident",
            "update",
            "1",
            "--status",
            "identified",
            "-m",
            "Nous avons trouvé la cause, le correctif arrive. Désolés pour la gêne.",
            "--eta",
            "20m",
            "--next-update",
            "15m",
        ],
    )
    assert updated.exit_code == 0, updated.output
    resolved = runner.invoke(
        app,
        [
            "incident",
            "resolve",
            "1",
            "-m",
            "Tout fonctionne. Merci pour votre patience.",
            "--compensation",
            "Livraison offerte avec le code MERCI",
        ],
    )
    assert resolved.exit_code == 0, resolved.output
    report = json.loads(runner.invoke(app, ["deliveries", "1", "--json"]).output)
    assert report["by_channel"]["email"] == {"captured": 6}
    assert report["problems"] == []
    shown = json.loads(runner.invoke(app, ["incident", "show", "1", "--json"]).output)
    assert [u["status"] for u in shown["updates"]] == ["investigating", "identified", "resolved"]
    assert shown["status"] == "resolved"
    assert rows(workdir, "captured_message") == 3 * 7
    listed = runner.invoke(app, ["incident", "list"])
    assert "all is well" in listed.output


def test_preview_shows_every_channel_and_the_linter(workdir: Path) -> None:
    result = runner.invoke(
        app,
        [
            "preview",
            "--status",
            "investigating",
            "--component",
            "checkout",
            "--message",
            "Le paiement échoue pour une partie des clients. Nous enquêtons.",
            "--eta",
            "30m",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert set(data["renders"]) == {"twitter", "facebook", "telegram", "email", "push", "blog"}
    assert {f["rule"] for f in data["findings"]} >= {"no-apology", "no-next-update"}
    assert rows(workdir, "incident") == 0


def test_commands_before_init_say_how_to_fix_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("BROADCASTER_CONFIG", raising=False)
    result = runner.invoke(app, ["incident", "list"])
    assert result.exit_code == 2
    assert "not initialised: run `broadcaster init`" in result.output
    assert "Traceback" not in result.output


def test_init_creates_the_web_push_key_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "config.toml").write_text('[channels.push]\nvapid_private_key_file = "keys/vapid.pem"\n')
    first = runner.invoke(app, ["--config", "config.toml", "init"])
    assert first.exit_code == 0, first.output
    key = (tmp_path / "keys" / "vapid.pem").read_bytes()
    assert (tmp_path / "keys" / "vapid.pem").stat().st_mode & 0o777 == 0o600
    again = runner.invoke(app, ["--config", "config.toml", "init"])
    assert (tmp_path / "keys" / "vapid.pem").read_bytes() == key  # never replaced: browsers keep it
    public = first.output.split("browsers): ")[1].split()[0]
    assert public and public in again.output


def test_example_config_parses_with_every_channel_in_capture_mode() -> None:
    from broadcaster.config import load_settings

    settings = load_settings(Path(__file__).parent.parent / "config.example.toml")
    channels = settings.channels
    assert not any(
        getattr(channels, n).live for n in ("email", "telegram", "twitter", "facebook", "push", "blog")
    )
    assert set(settings.components) == {"website", "checkout", "payment", "mobile-app", "order-tracking"}


def test_brackets_in_user_text_are_shown_not_eaten_as_markup(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    title = "Paiement [carte] indisponible"
    opened = runner.invoke(
        app, ["incident", "open", "--title", title, "-c", "checkout", "-m", GOOD, "--force"]
    )
    assert opened.exit_code == 0, opened.output
    assert title in runner.invoke(app, ["incident", "list"]).output
    doctor = runner.invoke(app, ["doctor"])
    assert "[channels.blog]" in doctor.output  # the fix names the config section


def test_add_takes_an_address_on_any_subscriber_channel_and_refuses_an_unknown_one(workdir: Path) -> None:
    added = runner.invoke(
        app, ["subscribers", "add", "--address", "telegram:4242", "--address", "email:Zoe@Example.com"]
    )
    assert added.exit_code == 0, added.output
    assert rows(workdir, "subscription") == 2
    refused = runner.invoke(app, ["subscribers", "add", "--address", "fax:0123"])
    assert refused.exit_code == 2
    assert "fax:0123" in refused.output and "telegram, email, push" in refused.output
    assert rows(workdir, "subscription") == 2


def test_a_csv_with_only_some_address_columns_is_read(workdir: Path) -> None:
    (workdir / "push.csv").write_text("push,locale\nfcm:abc123,en\n", encoding="utf-8")
    result = runner.invoke(app, ["subscribers", "import", "push.csv"])
    assert result.exit_code == 0, result.output
    assert rows(workdir, "subscription") == 1
