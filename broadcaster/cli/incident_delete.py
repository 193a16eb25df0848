"""`broadcaster incident delete <id>`: remove a rehearsal that only reached capture-mode channels.

It asks first (`--yes` for scripts); without an answer to give (no terminal, no `--yes`) it refuses.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from broadcaster.cli.options import AsJson, row_number
from broadcaster.cli.outside import outside
from broadcaster.cli.runtime import console, err_console, fail, open_runtime, run, state, user_errors
from broadcaster.config import Settings
from broadcaster.publishing.rehearsal import Rehearsal, check_rehearsal, delete_rehearsal

__all__ = ["register"]


def register(group: typer.Typer) -> None:
    """Add the `delete` command to the `incident` group."""
    group.command("delete")(user_errors(delete))


def _describe(found: Rehearsal) -> str:
    return (
        f"{found.kind} #{found.incident_id} «{found.title}»: {found.updates} update(s), "
        f"{found.deliveries} delivery row(s), {found.captured} captured message(s), "
        f"{found.scheduled_runs} scheduled run(s); {found.conversations} conversation(s) unlinked"
    )


def _confirmed(found: Rehearsal) -> bool:
    """Ask on the terminal; no answer to be had (no stdin) is a one-line refusal, not a traceback."""
    refusal = (
        f"incident delete {found.incident_id}: no answer to the confirmation (no terminal?); "
        "nothing deleted. Add --yes to delete without asking"
    )
    if sys.stdin is None or sys.stdin.closed:
        fail(refusal)
    try:
        return typer.confirm(f"Delete {_describe(found)}?", default=False, err=True)
    except typer.Abort:
        err_console.print()  # end the unanswered prompt's line
        fail(refusal)
        raise  # unreachable: fail() exits


async def _check(settings: Settings, incident_id: int) -> Rehearsal:
    async with open_runtime(settings) as runtime, runtime.sessions() as session:
        return await check_rehearsal(session, settings, incident_id)


async def _delete(settings: Settings, incident_id: int) -> Rehearsal:
    async with open_runtime(settings) as runtime, runtime.sessions() as session:
        return await delete_rehearsal(session, settings, incident_id)


def delete(
    ctx: typer.Context,
    incident_id: Annotated[int, row_number("The rehearsal's number (incident or maintenance).")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation (scripts).")] = False,
    as_json: AsJson = False,
) -> None:
    """Delete a rehearsal: an incident or maintenance whose messages only reached capture mode.

    Its updates, deliveries, captured messages and scheduled runs go; customer conversations stay,
    unlinked. Refused, with how many went out, if anything was sent for real.
    """
    settings = state(ctx).settings
    found = run(_check(settings, incident_id))
    if not yes and not _confirmed(found):
        err_console.print("Nothing deleted.")
        raise typer.Exit(1)
    deleted = run(_delete(settings, incident_id))
    if as_json:
        console.print_json(json.dumps(deleted.as_dict() | {"deleted": True}))
        return
    console.print(outside(f"Deleted {_describe(deleted)}."))
