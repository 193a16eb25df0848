"""`broadcaster maintenance schedule|reschedule|cancel|complete|list`: planned maintenance windows.

Scheduling sends nothing: the scheduler (`broadcaster serve`) sends the notice ladder, then
"started" and "completed". Rescheduling and cancelling tell those already told of the window at
once, like `incident update` (queued, then delivered with a progress bar unless `--no-wait`); before
its first notice they send nothing and say so. `complete` ends a running window now, on every channel.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text
from sqlmodel.ext.asyncio.session import AsyncSession

from broadcaster.cli.incidents import publish_and_deliver, show_refusal
from broadcaster.cli.options import (
    AsJson,
    Force,
    Message,
    NoWait,
    TitleTranslation,
    Translation,
    iso,
    parse_translations,
    row_number,
)
from broadcaster.cli.outside import outside
from broadcaster.cli.runtime import console, open_runtime, run, state, user_errors
from broadcaster.config import Settings
from broadcaster.localtime import local_time
from broadcaster.models import Incident, utcnow
from broadcaster.publishing.drafting import LintRefused
from broadcaster.publishing.maintenance import (
    Unannounced,
    cancel_maintenance,
    complete_maintenance_now,
    reschedule_maintenance,
    schedule_maintenance,
)
from broadcaster.publishing.maintenance_reads import list_maintenance, maintenance_dict, notice_ladder
from broadcaster.publishing.update_writer import Published
from broadcaster.timeparse import parse_future

app = typer.Typer(help="Schedule, move, cancel, complete and list maintenance windows.", no_args_is_help=True)

AUTHOR = "cli"
_TIME_HELP = "ISO 8601 (2026-11-25T02:00, in the brand's time zone unless it has an offset), or 14:30, 2h."
Starts = Annotated[str, typer.Option("--starts", help=f"When it starts: {_TIME_HELP}")]
Ends = Annotated[str, typer.Option("--ends", help=f"When it ends: {_TIME_HELP}")]
Components = Annotated[
    list[str], typer.Option("--component", "-c", help="Component under maintenance (repeatable).")
]
IncidentId = Annotated[int, row_number("The maintenance's number (`maintenance list`).")]
#: What `reschedule` / `cancel` say when the window's first notice had not gone out yet.
NOBODY_TOLD = {
    "scheduled": "nobody had been told yet: the plan moved, no notice sent",
    "cancelled": "nobody had been told yet: the plan was dropped, no notice sent",
}


def _local(settings: Settings, value: datetime | None) -> str:
    return local_time(value, settings.brand.timezone)


@app.command("schedule")
@user_errors
def schedule(
    ctx: typer.Context,
    title: Annotated[str, typer.Option(help="Short public title, e.g. 'Mise à jour du paiement'.")],
    starts: Starts,
    ends: Ends,
    component: Components,
    message: Message,
    translation: Translation = None,
    title_translation: TitleTranslation = None,
    force: Force = False,
    as_json: AsJson = False,
) -> None:
    """Plan a maintenance window; its notices go out on the ladder (72 h e-mail, 24 h push, 1 h social)."""
    settings = state(ctx).settings
    now = utcnow()
    starts_at = parse_future("--starts", starts, now=now, brand=settings.brand)
    ends_at = parse_future("--ends", ends, now=now, brand=settings.brand)
    texts = {settings.brand.default_locale: message, **parse_translations(translation)}

    async def action() -> Incident:
        async with open_runtime(settings) as runtime, runtime.sessions() as session:
            try:
                return await schedule_maintenance(
                    session, settings, title=title, starts_at=starts_at, ends_at=ends_at,
                    components=component, message=texts, author=AUTHOR, now=now, force=force,
                    title_translations=parse_translations(title_translation, "--title-translation"),
                )  # fmt: skip
            except LintRefused as exc:
                show_refusal(exc)
                raise

    incident = run(action())
    ladder = notice_ladder(settings, incident)
    if as_json:
        notices = [{"at": iso(at), "channels": channels} for at, channels in ladder]
        console.print_json(json.dumps(maintenance_dict(incident) | {"notices": notices}))
        return
    console.print(
        Text("Maintenance ")
        + outside(f"#{incident.id}", "bold")
        + outside(
            f" «{incident.title}» scheduled: {_local(settings, incident.scheduled_start_at)} → "
            f"{_local(settings, incident.scheduled_end_at)} ({settings.brand.timezone})"
        )
    )
    table = Table(title=f"Notices (sent by `broadcaster serve`, {settings.brand.timezone})")
    for column in ("at", "channels"):
        table.add_column(column)
    for at, channels in ladder:
        table.add_row(_local(settings, at), ", ".join(channels))
    table.add_row(_local(settings, incident.scheduled_start_at), "started: every channel")
    table.add_row(_local(settings, incident.scheduled_end_at), "completed: every channel")
    console.print(table)


async def _change(
    ctx: typer.Context,
    change: Callable[[AsyncSession], Awaitable[Published | Unannounced]],
    no_wait: bool,
    as_json: bool,
) -> None:
    """Apply a reschedule or a cancellation; deliver its notice, or say that nobody had been told."""
    settings = state(ctx).settings
    async with open_runtime(settings) as runtime, runtime.sessions() as session:
        outcome = await change(session)
    if isinstance(outcome, Unannounced):
        _report_unannounced(settings, outcome.incident, as_json)
        return

    async def written(_session: AsyncSession, _runtime: object) -> Published:
        return outcome  # the notice is written: what is left is to deliver it and report

    await publish_and_deliver(ctx, written, no_wait, as_json)


def _report_unannounced(settings: Settings, incident: Incident, as_json: bool) -> None:
    reason = NOBODY_TOLD[incident.status]
    if as_json:
        summary: dict[str, object] = {"incident_id": incident.id, "update_id": None, "notice_sent": False,
                                      "reason": reason, "deliveries": {}}  # fmt: skip
        console.print_json(json.dumps(maintenance_dict(incident) | summary))
        return
    window = (
        f"{_local(settings, incident.scheduled_start_at)} → {_local(settings, incident.scheduled_end_at)} "
        f"({settings.brand.timezone})"
    )
    console.print(
        Text("Maintenance ")
        + outside(f"#{incident.id}", "bold")
        + outside(f" «{incident.title}» {incident.status}: {window}\n")
        + outside(f"{reason[0].upper()}{reason[1:]}.", "yellow")
    )


@app.command("reschedule")
@user_errors
def reschedule(
    ctx: typer.Context,
    incident_id: IncidentId,
    starts: Annotated[str | None, typer.Option("--starts", help=f"New start: {_TIME_HELP}")] = None,
    ends: Annotated[str | None, typer.Option("--ends", help=f"New end: {_TIME_HELP}")] = None,
    no_wait: NoWait = False,
    as_json: AsJson = False,
) -> None:
    """Move a planned window ("rescheduled"), or a running one's end ("extended" or "shortened").

    The notice goes to those already told of the maintenance; before its first notice nothing is sent.
    """
    settings = state(ctx).settings
    now = utcnow()
    starts_at = parse_future("--starts", starts, now=now, brand=settings.brand) if starts else None
    ends_at = parse_future("--ends", ends, now=now, brand=settings.brand) if ends else None

    async def change(session: AsyncSession) -> Published | Unannounced:
        return await reschedule_maintenance(
            session, settings, incident_id, starts_at=starts_at, ends_at=ends_at, now=now, author=AUTHOR
        )

    run(_change(ctx, change, no_wait, as_json))


@app.command("cancel")
@user_errors
def cancel(
    ctx: typer.Context, incident_id: IncidentId, no_wait: NoWait = False, as_json: AsJson = False
) -> None:
    """Call a maintenance off and tell those already told of it; a running one gives its components back."""
    settings = state(ctx).settings

    async def change(session: AsyncSession) -> Published | Unannounced:
        return await cancel_maintenance(session, settings, incident_id, now=utcnow(), author=AUTHOR)

    run(_change(ctx, change, no_wait, as_json))


@app.command("complete")
@user_errors
def complete(
    ctx: typer.Context, incident_id: IncidentId, no_wait: NoWait = False, as_json: AsJson = False
) -> None:
    """End a running maintenance now, also before its planned end: "completed" on every channel.

    `/maintenance` answers 200 at once and the components are back to operational.
    """
    settings = state(ctx).settings

    async def action(session: AsyncSession, _runtime: object) -> Published:
        return await complete_maintenance_now(session, settings, incident_id, now=utcnow(), author=AUTHOR)

    run(publish_and_deliver(ctx, action, no_wait, as_json))


@app.command("list")
@user_errors
def list_(
    ctx: typer.Context,
    all_: Annotated[bool, typer.Option("--all", help="Include completed and cancelled ones.")] = False,
    as_json: AsJson = False,
) -> None:
    """Planned and running maintenance windows (or all of them), soonest first."""
    settings = state(ctx).settings

    async def fetch() -> list[Incident]:
        async with open_runtime(settings) as runtime:
            return await list_maintenance(runtime.sessions, include_over=all_)

    rows = run(fetch())
    if as_json:
        console.print_json(json.dumps([maintenance_dict(i) for i in rows]))
        return
    if not rows:
        console.print("No maintenance." if all_ else "No maintenance planned or running.")
        return
    table = Table(title=f"Maintenance windows ({settings.brand.timezone})")
    for column in ("#", "title", "status", "starts", "ends", "components"):
        table.add_column(column)
    for i in rows:
        table.add_row(
            str(i.id),
            outside(i.title),
            i.status,
            _local(settings, i.scheduled_start_at),
            _local(settings, i.scheduled_end_at),
            ", ".join(i.components),
        )
    console.print(table)
