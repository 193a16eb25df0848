"""`broadcaster doctor` checks every live channel for real, against the local peers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from broadcaster.cli import app
from tests.peers.smtp import SmtpPeer
from tests.peers.telegram import TelegramPeer

runner = CliRunner()


def config(tmp_path: Path, smtp: SmtpPeer, telegram: TelegramPeer, token: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(
        f'[server]\npublic_base_url = "https://status.shop.example"\n'
        f'[database]\nurl = "sqlite+aiosqlite:///{tmp_path}/b.db"\n'
        f'[channels.email]\nhost = "127.0.0.1"\nport = {smtp.port}\nsecurity = "none"\n'
        f'[channels.telegram]\ntoken = "{token}"\nbase_url = "{telegram.base_url}"\n',
        encoding="utf-8",
    )
    assert runner.invoke(app, ["--config", str(path), "init"]).exit_code == 0
    return path


@pytest.fixture
def peers() -> tuple[SmtpPeer, TelegramPeer]:
    with SmtpPeer() as smtp, TelegramPeer() as telegram:
        yield smtp, telegram


def test_all_channels_healthy(tmp_path: Path, peers: tuple[SmtpPeer, TelegramPeer]) -> None:
    path = config(tmp_path, *peers, token="123:TEST")
    result = runner.invoke(app, ["--config", str(path), "doctor", "--json"])
    assert result.exit_code == 0, result.output
    by_channel = {d["channel"]: d for d in json.loads(result.output)}
    assert by_channel["email"]["mode"] == "live" and by_channel["email"]["ok"]
    assert by_channel["telegram"]["ok"] and "@shop_status_bot" in by_channel["telegram"]["detail"]
    assert by_channel["twitter"]["mode"] == "capture"


def test_a_broken_live_channel_fails_with_how_to_fix(
    tmp_path: Path, peers: tuple[SmtpPeer, TelegramPeer]
) -> None:
    path = config(tmp_path, *peers, token="999:WRONG-TOKEN")
    result = runner.invoke(app, ["--config", str(path), "doctor", "--json"])
    assert result.exit_code == 1
    telegram = next(d for d in json.loads(result.output) if d["channel"] == "telegram")
    assert not telegram["ok"] and "token" in telegram["detail"] and telegram["fix"]
    assert "999:WRONG-TOKEN" not in result.output


def test_replies_without_a_staff_address_or_a_dmarc_verdict_are_reported(
    tmp_path: Path, peers: tuple[SmtpPeer, TelegramPeer]
) -> None:
    path = config(tmp_path, *peers, token="123:TEST")
    path.write_text(path.read_text(encoding="utf-8").replace(
        'security = "none"\n', 'security = "none"\ninbound_enabled = true\n'), encoding="utf-8")  # fmt: skip
    result = runner.invoke(app, ["--config", str(path), "doctor", "--json"])
    by_check = {d["channel"]: d for d in json.loads(result.output)}
    assert not by_check["postmaster"]["ok"] and "staff.email" in by_check["postmaster"]["fix"]
    assert by_check["reply senders"]["ok"] and "inbound_authserv_id" in by_check["reply senders"]["fix"]


def test_the_shared_pacing_store_is_shown_and_a_dead_redis_fails(
    tmp_path: Path, peers: tuple[SmtpPeer, TelegramPeer], redis_url: str
) -> None:
    path = config(tmp_path, *peers, token="123:TEST")
    alone = json.loads(runner.invoke(app, ["--config", str(path), "doctor", "--json"]).output)
    assert any(d["channel"] == "pacing" and d["ok"] and "each worker" in d["detail"] for d in alone)

    with path.open("a", encoding="utf-8") as config_file:
        config_file.write(f'[dispatch]\nredis_url = "{redis_url}"\n')
    shared = json.loads(runner.invoke(app, ["--config", str(path), "doctor", "--json"]).output)
    pacing = next(d for d in shared if d["channel"] == "pacing")
    assert pacing["ok"] and "redis 127.0.0.1:6379" in pacing["detail"]

    text = path.read_text(encoding="utf-8").replace(redis_url, "redis://:s3cret-pw@127.0.0.1:9/0")
    path.write_text(text, encoding="utf-8")
    result = runner.invoke(app, ["--config", str(path), "doctor", "--json"])
    pacing = next(d for d in json.loads(result.output) if d["channel"] == "pacing")
    assert result.exit_code == 1 and not pacing["ok"] and "dispatch.redis_url" in pacing["fix"]
    assert "s3cret-pw" not in result.output
