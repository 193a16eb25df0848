"""Shared fixtures: loopback-only network, a migrated database (SQLite or PostgreSQL), settings."""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from broadcaster.config import Settings, parse_settings
from broadcaster.db import SessionFactory, create_engine, session_factory, upgrade
from broadcaster.logs import install_log_redaction

PG_URL_VAR = "BROADCASTER_TEST_DATABASE_URL"
REDIS_URL_VAR = "BROADCASTER_TEST_REDIS_URL"

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def pytest_configure(config: pytest.Config) -> None:
    """What `broadcaster`'s start-up does before any command: the channels' log redaction."""
    install_log_redaction()


def _is_local(address: Any) -> bool:
    if not isinstance(address, tuple):  # AF_UNIX paths are local by definition
        return True
    host = address[0]
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests talk to 127.0.0.1 only: any other destination fails loudly."""

    def connect(self: socket.socket, address: Any) -> Any:
        if not _is_local(address):
            raise ConnectionRefusedError(f"test tried to reach non-loopback address {address!r}")
        return _real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> Any:
        if not _is_local(address):
            raise ConnectionRefusedError(f"test tried to reach non-loopback address {address!r}")
        return _real_connect_ex(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)


def make_settings(database_url: str, **sections: Any) -> Settings:
    """Settings as a config file would give them; `sections` are TOML tables as dicts."""
    data: dict[str, Any] = {
        "brand": {
            "name": "Maison Exemple",
            "public_url": "https://shop.example",
            "timezone": "Europe/Paris",
            "default_locale": "fr",
            "locales": ["fr", "en"],
            "alternative": {
                "fr": "Commandes par téléphone au 01 23 45 67 89",
                "en": "Order by phone: +33 1 23 45 67 89",
            },
        },
        "database": {"url": database_url},
        "dispatch": {
            "poll_interval_seconds": 0.05,
            "backoff_base_seconds": 0.2,
            "backoff_max_seconds": 1.0,
            "breaker_probe_seconds": 0.2,  # an open breaker probes at test speed
        },
    }
    for key, value in sections.items():
        data[key] = {**data.get(key, {}), **value}
    return parse_settings(data, "test-config")


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path / 'broadcaster.db'}"
    upgrade(url)
    return url


def _reset_postgres(url: str) -> None:
    import asyncio

    async def drop() -> None:
        engine = create_engine(url)
        async with engine.begin() as conn:
            await conn.execute(text("DROP SCHEMA public CASCADE"))
            await conn.execute(text("CREATE SCHEMA public"))
        await engine.dispose()

    asyncio.run(drop())


async def _admin(url: str, statement: str) -> None:
    import asyncpg

    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    connection = await asyncpg.connect(dsn)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A database of this test run's own, created next to BROADCASTER_TEST_DATABASE_URL's.

    Two suites running at once (a CI run and a developer's) then never drop each other's tables.
    """
    import asyncio

    base = os.environ.get(PG_URL_VAR, "")
    if not base:
        yield ""
        return
    name = f"broadcaster_test_{os.getpid()}"
    asyncio.run(_admin(base, f'DROP DATABASE IF EXISTS "{name}"'))
    asyncio.run(_admin(base, f'CREATE DATABASE "{name}"'))
    yield make_url(base).set(database=name).render_as_string(hide_password=False)
    asyncio.run(_admin(base, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A freshly migrated database: SQLite always, PostgreSQL when BROADCASTER_TEST_DATABASE_URL is set."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'broadcaster.db'}"
    else:
        return request.getfixturevalue("pg_database_url")
    upgrade(url)
    return url


@pytest.fixture
def pg_database_url(postgres_url: str) -> str:
    """A freshly migrated PostgreSQL database (several workers share it), or a visible skip."""
    if not postgres_url:
        pytest.skip(f"{PG_URL_VAR} is not set: PostgreSQL tests skipped (CI sets it)")
    _reset_postgres(postgres_url)
    upgrade(postgres_url)
    return postgres_url


@pytest.fixture
def redis_url() -> str:
    """BROADCASTER_TEST_REDIS_URL's database, emptied; a visible skip without it (CI sets it)."""
    url = os.environ.get(REDIS_URL_VAR, "")
    if not url:
        pytest.skip(f"{REDIS_URL_VAR} is not set: Redis tests skipped (CI sets it)")
    import redis

    client = redis.Redis.from_url(url)
    try:
        client.flushdb()
    finally:
        client.close()
    return url


@pytest.fixture
async def sessions(database_url: str) -> AsyncIterator[SessionFactory]:
    engine = create_engine(database_url)
    yield session_factory(engine)
    await engine.dispose()


@pytest.fixture
def settings_for(database_url: str) -> Callable[..., Settings]:
    def build(**sections: Any) -> Settings:
        return make_settings(database_url, **sections)

    return build


@pytest.fixture
def free_port() -> Iterator[Callable[[], int]]:
    def pick() -> int:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return int(sock.getsockname()[1])

    yield pick


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh folder with the example config (every channel in capture mode) and an initialised db,
    for CLI tests (wide Rich tables)."""
    from typer.testing import CliRunner

    from broadcaster.cli import app

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("BROADCASTER_CONFIG", raising=False)
    monkeypatch.setenv("COLUMNS", "200")
    example = Path(__file__).parent.parent / "config.example.toml"
    (tmp_path / "config.toml").write_text(example.read_text(encoding="utf-8"), encoding="utf-8")
    result = CliRunner().invoke(app, ["init"])
    assert result.exit_code == 0, result.output
    return tmp_path
