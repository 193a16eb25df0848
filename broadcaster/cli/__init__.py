"""The `broadcaster` command line (Typer + Rich)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from broadcaster.auth.audit import act_as_from_now, cli_actor
from broadcaster.cli import (
    captured,
    deliveries,
    doctor,
    drill,
    inbox,
    incident_delete,
    incident_views,
    incidents,
    postmortem,
    preview,
    schedule,
    server,
    subscribers,
    users,
)
from broadcaster.cli import maintenance as maintenance_cli
from broadcaster.cli.runtime import CliState
from broadcaster.logs import install_log_redaction

__all__ = ["app", "main"]

app = typer.Typer(
    help="crisis-broadcaster: one crisis update to every channel, delivered reliably.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(incidents.app, name="incident")
postmortem.register(incidents.app)
incident_delete.register(incidents.app)
incident_views.register(incidents.app)
app.add_typer(subscribers.app, name="subscribers")
app.add_typer(inbox.app, name="inbox")
app.add_typer(maintenance_cli.app, name="maintenance")
preview.register(app)
deliveries.register(app)
captured.register(app)
server.register(app)
doctor.register(app)
drill.register(app)
schedule.register(app)
app.add_typer(users.users_app, name="users")
app.add_typer(users.tokens_app, name="tokens")
users.register_audit(app)


@app.callback()
def root(
    ctx: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option("--config", envvar="BROADCASTER_CONFIG", help="TOML settings (default: ./config.toml)."),
    ] = None,
    as_user: Annotated[
        str | None,
        typer.Option(
            "--as",
            envvar="BROADCASTER_USER",
            help="Whose work this is, for the audit log (with the unix user).",
        ),
    ] = None,
) -> None:
    ctx.obj = CliState(config_path=config)
    act_as_from_now(cli_actor(as_user))


def main() -> None:
    install_log_redaction()
    app()
