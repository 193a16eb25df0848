"""`broadcaster deliveries <incident>`: per channel sent / captured / pending / failed / dead, with reasons;
`broadcaster deliveries requeue <update>`: put dead (or failed) rows back once the cause is fixed.

"captured" is a capture-mode channel's delivery: stored (see `broadcaster captured`), never sent.
`deliveries <incident>` is short for `deliveries show <incident>`.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Annotated

import typer
from rich.table import Table
from typer.core import TyperGroup

from broadcaster.cli.options import AsJson, row_number
from broadcaster.cli.outside import outside
from broadcaster.cli.runtime import console, fail, open_runtime, run, state, user_errors
from broadcaster.cli.views import delivery_table
from broadcaster.delivery import channel_pause, outbox
from broadcaster.delivery.delivery_reads import DeliveryReport, delivery_dict, incident_deliveries
from broadcaster.delivery.requeue import Requeued, requeue


class _ShowByDefault(TyperGroup):
    """A group whose first word, when it names no sub-command, is `show`'s argument."""

    # Typer vendors click: its Context is public only as the `typer.Context` subclass.
    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:  # type: ignore[override]
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = ["show", *args]
        return super().parse_args(ctx, args)


app = typer.Typer(
    cls=_ShowByDefault,
    no_args_is_help=True,
    help="Where an incident's messages stand (`deliveries <incident>`); requeue dead ones.",
)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="deliveries")


@app.command("show")
@user_errors
def deliveries(
    ctx: typer.Context,
    incident_id: Annotated[int, row_number("Incident number.")],
    problems: Annotated[int, typer.Option(help="Show at most this many failed/dead/retrying rows.")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Where every message of an incident stands, and why the failed ones failed."""

    async def fetch() -> DeliveryReport | None:
        async with open_runtime(state(ctx).settings) as runtime:
            return await incident_deliveries(runtime.sessions, incident_id, limit=problems)

    result = run(fetch())
    if result is None:
        fail(f"no incident #{incident_id}")
        return
    counts, troubled, pauses = result.counts, result.rows, result.pauses
    timezone = state(ctx).settings.brand.timezone
    paused = {
        channel: channel_pause.describe(pauses[channel], timezone) for channel in counts if channel in pauses
    }
    if as_json:
        console.print_json(
            json.dumps(
                {
                    "incident_id": incident_id,
                    "by_channel": counts,
                    "paused": paused,
                    "problems": [delivery_dict(d) for d in troubled],
                }
            )
        )
        return
    console.print(delivery_table(counts, title=f"Deliveries of incident #{incident_id}"))
    for channel, line in paused.items():
        console.print(f"{channel}: {line}")
    if troubled:
        table = Table(title="Failed, dead and retrying")
        for column in ("update", "channel", "target", "status", "attempts", "reason"):
            table.add_column(column)
        for d in troubled:
            table.add_row(
                str(d.update_id),
                d.channel,
                outside(d.target),
                d.status,
                str(d.attempts),
                outside(d.last_error),
            )
        console.print(table)


StatusChoice = Annotated[
    list[str] | None,
    typer.Option(
        "--status", help="Which rows: dead (the default) or failed (permanent refusals); repeatable."
    ),
]


@app.command("requeue")
@user_errors
def requeue_update(
    ctx: typer.Context,
    update_id: Annotated[int, row_number("Update number (see `incident show`).")],
    channel: Annotated[
        list[str] | None, typer.Option("--channel", help="Only this channel (repeatable).")
    ] = None,
    status: StatusChoice = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would be requeued; change nothing.")
    ] = False,
    as_json: AsJson = False,
) -> None:
    """Put an update's dead (or failed) deliveries back in the queue; what was sent is never resent."""

    async def apply() -> Requeued:
        async with open_runtime(state(ctx).settings) as runtime, runtime.sessions() as session:
            return await requeue(
                session,
                update_id,
                statuses=status or [outbox.DEAD],
                channels=channel or [],
                dry_run=dry_run,
            )

    result = run(apply())
    if as_json:
        console.print_json(json.dumps(asdict(result)))
        return
    verb = "Would requeue" if result.dry_run else "Requeued"
    table = Table(title=f"{verb} deliveries of update #{result.update_id}")
    for column in ("channel", "was", "requeued", "skipped (subscription inactive)"):
        table.add_column(column)
    for name in sorted(result.requeued.keys() | result.skipped_inactive.keys()):
        moved, skipped = result.requeued.get(name, {}), result.skipped_inactive.get(name, {})
        for was in sorted(moved.keys() | skipped.keys()):
            table.add_row(name, was, str(moved.get(was, 0)), str(skipped.get(was, 0)))
    if not table.row_count:
        console.print(f"nothing to requeue for update #{result.update_id}")
        return
    console.print(table)
