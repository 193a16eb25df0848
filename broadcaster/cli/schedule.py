"""`broadcaster schedule` (what the scheduler will do) and `broadcaster scheduler` (run it alone)."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from typing import Annotated

import typer
from rich.table import Table

from broadcaster.cli.outside import outside
from broadcaster.cli.runtime import console, open_runtime, run, run_until_signal, state, user_errors
from broadcaster.config import Settings
from broadcaster.localtime import local_time
from broadcaster.models import utcnow
from broadcaster.schedule.report import schedule_report
from broadcaster.schedule.runner import Scheduler


def _local(settings: Settings, iso_time: str) -> str:
    return local_time(datetime.fromisoformat(iso_time), settings.brand.timezone)


def register(root: typer.Typer) -> None:
    @root.command("schedule")
    @user_errors
    def schedule(
        ctx: typer.Context,
        as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    ) -> None:
        """Every pending scheduled job (what, when, incident, channels) and the ones missed lately."""
        settings = state(ctx).settings

        async def report() -> dict[str, list[dict[str, object]]]:
            async with open_runtime(settings) as runtime:
                return await schedule_report(runtime.sessions, settings, utcnow())

        found = run(report())
        if as_json:
            console.print_json(json.dumps(found))
            return
        table = Table(title=f"Scheduled jobs ({settings.brand.timezone})")
        for column in ("when", "what", "incident", "channels"):
            table.add_column(column)
        for job in found["pending"]:
            late = " [red](overdue)[/]" if job["overdue"] else ""
            when = _local(settings, str(job["run_at"])) + late
            channels = ", ".join(job["channels"]) if isinstance(job["channels"], list) else ""
            incident = outside(f"#{job['incident_id']} {job['incident']}")
            table.add_row(when, str(job["what"]), incident, channels or "staff")
        console.print(table if found["pending"] else "[dim]Nothing scheduled.[/]")
        if found["missed"]:
            missed = Table(
                title=f"Missed (not run in their grace period, {settings.brand.timezone})", title_style="red"
            )
            for column in ("was due", "job", "incident", "why"):
                missed.add_column(column)
            for run_ in found["missed"]:
                missed.add_row(_local(settings, str(run_["due_at"])), str(run_["kind"]),
                               f"#{run_['incident_id']}", outside(str(run_["detail"])))  # fmt: skip
            console.print(missed)

    @root.command("scheduler")
    @user_errors
    def scheduler(ctx: typer.Context) -> None:
        """Run only the scheduler (`serve` runs one too; of several, one works, the others stand by)."""
        settings = state(ctx).settings

        async def main(stop: asyncio.Event) -> None:
            async with open_runtime(settings) as runtime:
                console.print("Scheduler standing by for the deployment's lock; Ctrl-C to stop.")
                await Scheduler(settings, runtime.sessions, runtime.composer).run(stop)

        run_until_signal(main)
