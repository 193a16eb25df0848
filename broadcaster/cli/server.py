"""`broadcaster init`, `serve` and `worker`."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from broadcaster.auth.users import NewUser, ensure_first_admin
from broadcaster.cli.runtime import console, open_runtime, run, run_until_signal, state, user_errors
from broadcaster.cli.users import setup_url
from broadcaster.config import Settings
from broadcaster.db import upgrade
from broadcaster.delivery.dispatch import Dispatcher
from broadcaster.delivery.runtimes import build_channels, open_channels
from broadcaster.logs import configure_logging, log_event
from broadcaster.publishing.incidents import sync_components
from channels.push.webpush import generate_vapid_key, public_key_from_file

log = logging.getLogger("broadcaster.worker")


def vapid_public_key(path: str) -> str:
    """The Web Push public key of `path`, creating the private key (0600) on first use."""
    key_file = Path(path)
    if key_file.exists():
        return public_key_from_file(key_file)
    key_file.parent.mkdir(parents=True, exist_ok=True)
    return generate_vapid_key(key_file)


def _config_origin(settings: Settings) -> str:
    """Where the settings came from, in words: the file's path, or that there was none."""
    if settings.source == Settings.model_fields["source"].default:
        return "no config file: built-in defaults"
    return settings.source


def register(root: typer.Typer) -> None:
    @root.command("init")
    @user_errors
    def init(
        ctx: typer.Context,
        admin_email: Annotated[
            str,
            typer.Option("--admin-email", envvar="BROADCASTER_ADMIN_EMAIL", help="The first admin's e-mail."),
        ] = "admin@example.com",
    ) -> None:
        """Create or upgrade the database, register the configured components, and create the first
        admin when there is no staff user (with a one-time set-up link)."""
        settings = state(ctx).settings
        upgrade(settings.database.url)

        async def sync() -> tuple[dict[str, bool], NewUser | None]:
            async with open_runtime(settings) as runtime:
                async with runtime.sessions() as session:
                    await sync_components(session, settings)
                first = await ensure_first_admin(runtime.sessions, admin_email)
                async with open_channels(settings, runtime.sessions) as runtimes:
                    return {name: rt.live for name, rt in runtimes.items()}, first

        channels, first_admin = run(sync())
        console.print(f"Database ready: {settings.database.url.split('@')[-1]}")
        if first_admin is not None:
            console.print(
                f"First admin: {first_admin.user.email}. Set its password within 24 h, by this link (once):"
            )
            console.print(setup_url(settings, first_admin.setup_secret), soft_wrap=True, highlight=False)
        table = Table(title=f"Channels ({_config_origin(settings)})")
        table.add_column("channel")
        table.add_column("mode")
        for name, live in channels.items():
            table.add_row(
                name, "[green]live[/]" if live else "[yellow]capture[/] (no credentials: stored, not sent)"
            )
        console.print(table)
        vapid_file = settings.channels.push.vapid_private_key_file
        if settings.channels.push.enabled and vapid_file:
            console.print(
                f"Web Push application server key (give it to browsers): {vapid_public_key(vapid_file)}"
            )

    @root.command("serve")
    @user_errors
    def serve(
        ctx: typer.Context,
        host: Annotated[str | None, typer.Option(help="Bind address (default from config).")] = None,
        port: Annotated[int | None, typer.Option(help="Port (default from config).")] = None,
        telegram_polling: Annotated[
            bool,
            typer.Option(
                "--telegram-polling",
                help="Pull Telegram messages with getUpdates instead of the webhook (no public URL needed).",
            ),
        ] = False,
    ) -> None:
        """Serve the API, the public pages and webhooks; run the dispatch workers, the inbox and its bot."""
        import uvicorn

        from broadcaster.web import create_app
        from broadcaster.web.serving import serving_config

        settings = state(ctx).settings
        app = create_app(settings, telegram_polling=telegram_polling)
        uvicorn.Server(serving_config(app, settings, host, port)).run()

    @root.command("worker")
    @user_errors
    def worker(ctx: typer.Context) -> None:
        """Run only the dispatch workers (several nodes on PostgreSQL, or a separate process)."""
        settings = state(ctx).settings
        configure_logging(settings.server.log_format)

        async def main(stop: asyncio.Event) -> None:
            async with open_runtime(settings) as runtime:
                runtimes = build_channels(settings, runtime.sessions)
                console.print(f"Dispatching {', '.join(runtimes)}; Ctrl-C to stop.")
                for name, rt in runtimes.items():
                    log_event(log, "channel started", channel=name, mode="live" if rt.live else "capture")
                dispatcher = Dispatcher(
                    runtime.sessions, runtimes, settings.dispatch, settings.server.public_base_url
                )
                try:
                    async with dispatcher:
                        await dispatcher.run(stop)
                finally:
                    log_event(log, "worker stopped", channels=",".join(runtimes))

        run_until_signal(main)
