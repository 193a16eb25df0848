"""What every command needs: settings, a database, the composer, channels, and clean errors."""

from __future__ import annotations

import asyncio
import functools
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.text import Text

from broadcaster.cli.outside import TerminalConsole, outside
from broadcaster.compose.render import Composer
from broadcaster.config import Settings, load_settings
from broadcaster.db import SessionFactory, create_engine, ensure_schema, session_factory
from broadcaster.errors import BroadcasterError

console = TerminalConsole()
err_console = TerminalConsole(stderr=True)

T = TypeVar("T")


@dataclass
class CliState:
    config_path: Path | None = None
    _settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self.config_path)
        return self._settings


def state(ctx: typer.Context) -> CliState:
    obj = ctx.find_root().obj
    assert isinstance(obj, CliState)
    return obj


def fail(message: str, code: int = 2) -> None:
    err_console.print(Text("error: ", "bold red") + outside(message), highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def user_errors(func: Callable[..., T]) -> Callable[..., T]:
    """Turn what a person can fix (`BroadcasterError`) into one red line and exit code 2, no
    traceback; a programming error keeps its traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        try:
            return func(*args, **kwargs)
        except BroadcasterError as exc:
            fail(str(exc))
            raise  # unreachable: fail() exits

    return wrapper


def run(coro: Awaitable[T]) -> T:
    return asyncio.run(coro)  # type: ignore[arg-type]


def run_until_signal(main: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    """Run `main(stop)` until it returns; SIGINT or SIGTERM set `stop` (long-running commands)."""

    async def with_signals() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await main(stop)

    asyncio.run(with_signals())


@dataclass
class Runtime:
    settings: Settings
    sessions: SessionFactory
    composer: Composer


@asynccontextmanager
async def open_runtime(settings: Settings) -> AsyncIterator[Runtime]:
    """An engine on the configured database, closed on exit."""
    engine = create_engine(settings.database.url)
    try:
        await ensure_schema(engine)
        yield Runtime(
            settings=settings,
            sessions=session_factory(engine),
            composer=Composer(settings.templates_dir or None, default_locale=settings.brand.default_locale),
        )
    finally:
        await engine.dispose()
