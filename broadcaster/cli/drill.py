"""`broadcaster drill`: the fire drill — a TEST message on every live channel, then the readiness table."""

from __future__ import annotations

import getpass
import json
from typing import Annotated

import typer
from rich.table import Table

from broadcaster.cli.outside import outside
from broadcaster.cli.runtime import console, err_console, open_runtime, run, state, user_errors
from broadcaster.config import Settings
from broadcaster.drill.run import FAILED, OK, DrillReport, run_drill

_STYLE = {OK: "[green]ok[/]", FAILED: "[red]failed[/]"}


async def _drill(settings: Settings, *, public: bool, wait: bool, by: str) -> DrillReport:
    async with open_runtime(settings) as runtime:
        # On stderr: stdout stays the table (or the JSON) alone.
        with err_console.status("broadcaster drill") as status:
            return await run_drill(
                settings, runtime.sessions, public=public, wait=wait, by=by,
                progress=lambda text: status.update(outside(text)),
            )  # fmt: skip


def _whoami() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no user name in a container without /etc/passwd entry
        return ""


def _table(report: DrillReport) -> Table:
    table = Table(title=f"broadcaster drill #{report.drill_id}: {'ready' if report.ok else 'NOT ready'}")
    for column in ("channel", "status", "detail", "how to fix", "first accepted"):
        table.add_column(column)
    for r in report.results:
        detail = r.detail + (f" ({', '.join(r.provider_ids)})" if r.provider_ids else "")
        first = f"{r.first_accepted_seconds:.1f} s" if r.first_accepted_seconds is not None else ""
        status = _STYLE.get(r.status, "[yellow]skipped[/]")
        table.add_row(r.channel, status, outside(detail), outside(r.fix), first)
    return table


def register(root: typer.Typer) -> None:
    @root.command("drill")
    @user_errors
    def drill(
        ctx: typer.Context,
        public: Annotated[
            bool, typer.Option("--public", help="Also post on X, Facebook and the blog.")
        ] = False,
        no_wait: Annotated[
            bool, typer.Option("--no-wait", help="Skip the round trips that wait (reply, /status).")
        ] = False,
        by: Annotated[str, typer.Option("--by", help="Who runs the drill (default: your user name).")] = "",
        as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    ) -> None:
        """Send a TEST message to the [drill] test audience on every live channel; exit 1 on any failure.

        Nothing goes through incidents or the outbox: subscribers never see it. While it waits,
        reply to the drill e-mail and send /status in the test chat (`broadcaster serve` running).
        """
        settings = state(ctx).settings
        report = run(_drill(settings, public=public, wait=not no_wait, by=by or _whoami()))
        if as_json:
            console.print_json(json.dumps(report.as_dict()))
        else:
            console.print(_table(report))
        if not report.ok:
            raise typer.Exit(1)
