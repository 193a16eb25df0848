"""An empty secret is not a secret: refused at load for every secret key, and short ones flagged."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import BaseModel
from typer.testing import CliRunner

from broadcaster.cli import app
from broadcaster.config import ConfigError, Settings
from broadcaster.db import SessionFactory
from broadcaster.web import create_app
from tests.conftest import make_settings
from tests.served import served
from tests.staff import staff_token
from tests.test_inbox_api import client_for

runner = CliRunner()
UPDATE = (Path(__file__).parent / "payloads" / "telegram" / "message.json").read_bytes()


def secret_keys(model: type[BaseModel] = Settings, prefix: str = "") -> Iterator[str]:
    """Every key of the configuration whose value is a secret, found from the models themselves."""
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield from secret_keys(annotation, f"{prefix}{name}.")
        elif "SecretStr" in str(annotation):
            yield f"{prefix}{name}"


def nested(key: str, value: str) -> dict[str, object]:
    head, _, rest = key.partition(".")
    return {head: nested(rest, value) if rest else value}


def test_the_secret_keys_are_all_found() -> None:
    keys = set(secret_keys())
    assert {"channels.telegram.webhook_secret", "channels.facebook.app_secret"} <= keys
    assert "dispatch.redis_url" in keys  # a Redis URL may carry a password
    assert len(keys) == 14


@pytest.mark.parametrize("value", ["", "   ", "\t\n"])
@pytest.mark.parametrize("key", sorted(secret_keys()))
def test_an_empty_secret_is_a_config_error_naming_its_key(key: str, value: str) -> None:
    section, _, rest = key.partition(".")
    with pytest.raises(ConfigError) as refused:
        make_settings("sqlite+aiosqlite://", **{section: nested(rest, value)})
    assert str(refused.value) == f"test-config: {key}: empty secret: set a real value or remove the key"


@pytest.mark.parametrize("value", ["", "  "])
def test_a_webhook_secret_set_but_empty_in_the_environment_is_refused_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TG_WEBHOOK_SECRET", value)
    (tmp_path / "config.toml").write_text(
        "[channels.telegram]\nwebhook_secret = 'env:TG_WEBHOOK_SECRET'\n", encoding="utf-8"
    )
    result = runner.invoke(app, ["--config", "config.toml", "init"])
    assert result.exit_code == 2
    assert (
        "channels.telegram.webhook_secret: environment variable TG_WEBHOOK_SECRET is empty" in result.output
    )
    assert not (tmp_path / "data").exists()


def test_the_old_shared_api_token_is_refused_with_the_way_to_per_user_tokens(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "config.toml").write_text(
        "[api]\ntoken = 'a-long-shared-secret-0123456789'\n", encoding="utf-8"
    )
    result = runner.invoke(app, ["--config", "config.toml", "init"])
    assert result.exit_code == 2
    assert "the shared [api] token is gone" in result.output and "broadcaster tokens create" in result.output
    assert "a-long-shared-secret" not in result.output
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize("authorization", ["Bearer", "Bearer ", "Bearer    ", ""])
async def test_an_empty_bearer_is_refused(
    database_url: str, sessions: SessionFactory, authorization: str
) -> None:
    settings = make_settings(database_url)
    await staff_token(sessions, "agent")
    async with client_for(settings, sessions) as client:
        response = await client.get("/api/v1/inbox", headers={"Authorization": authorization})
    assert response.status_code == 401


async def test_a_telegram_update_without_the_secret_header_is_refused(database_url: str) -> None:
    settings = make_settings(database_url, channels={"telegram": {"webhook_secret": "w" * 40}})
    async with served(create_app(settings, dispatch=False)) as client:
        for headers in ({}, {"X-Telegram-Bot-Api-Secret-Token": ""}):
            response = await client.post("/webhooks/telegram", content=UPDATE, headers=headers)
            assert response.status_code == 403


def test_doctor_flags_short_secrets_without_showing_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHORT_SECRET", "letmein-2026")
    path = tmp_path / "config.toml"
    path.write_text(
        f'[database]\nurl = "sqlite+aiosqlite:///{tmp_path}/b.db"\n'
        "[channels.telegram]\nwebhook_secret = 'env:SHORT_SECRET'\n",
        encoding="utf-8",
    )
    assert runner.invoke(app, ["--config", str(path), "init"]).exit_code == 0
    result = runner.invoke(app, ["--config", str(path), "doctor", "--json"])
    assert result.exit_code == 0, result.output  # a warning, not a broken channel
    (weak,) = [d for d in json.loads(result.output) if d["channel"] == "secrets"]
    assert weak["ok"] is False and weak["mode"] == "settings"
    assert weak["detail"] == "channels.telegram.webhook_secret has 12 characters: short enough to guess"
    assert "token_urlsafe" in weak["fix"]
    assert "letmein" not in result.output
