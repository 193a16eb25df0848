"""`broadcaster incident list|show`: what is open, and one incident's timeline with its deliveries."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.panel import Panel
from rich.table import Table

from broadcaster.cli.options import AsJson, row_number
from broadcaster.cli.outside import outside
from broadcaster.cli.runtime import console, fail, open_runtime, run, state, user_errors
from broadcaster.cli.views import delivery_table
from broadcaster.inbox.spikes import publish_command
from broadcaster.localtime import local_time
from broadcaster.models import Incident, IncidentUpdate
from broadcaster.publishing.incident_reads import (
    IncidentTimeline,
    incident_dict,
    incident_timeline,
    list_incidents,
    timeline_dict,
)
from broadcaster.publishing.update_writer import changes_between


def list_(
    ctx: typer.Context,
    all_: Annotated[bool, typer.Option("--all", help="Include resolved.")] = False,
    as_json: AsJson = False,
) -> None:
    """List open incidents and drafts (or all of them); maintenance windows: `maintenance list`."""
    settings = state(ctx).settings

    async def fetch() -> list[Incident]:
        async with open_runtime(settings) as runtime:  # maintenance windows: `maintenance list`
            return await list_incidents(runtime.sessions, include_over=all_, limit=10_000)

    incidents = run(fetch())
    if as_json:
        console.print_json(json.dumps([incident_dict(i) for i in incidents]))
        return
    zone = settings.brand.timezone
    table = Table(title=f"Incidents ({zone})" if all_ else f"Open incidents and drafts ({zone})")
    for column in ("#", "title", "status", "impact", "components", "opened", "next update"):
        table.add_column(column)
    for i in incidents:
        table.add_row(
            str(i.id),
            outside(i.title),
            DRAFT_LABEL if i.status == "draft" else i.status,
            i.impact,
            ", ".join(i.components),
            local_time(i.created_at, zone),
            local_time(i.next_update_at, zone),
        )
    console.print(table if incidents else "No incidents." if all_ else "No open incident: all is well.")


DRAFT_LABEL = "[bold yellow]draft (not public)[/]"


def show(
    ctx: typer.Context, incident_id: Annotated[int, row_number("Incident number.")], as_json: AsJson = False
) -> None:
    """An incident's timeline: every update and its deliveries (times in the brand's time zone)."""

    async def fetch() -> IncidentTimeline | None:
        async with open_runtime(state(ctx).settings) as runtime:
            return await incident_timeline(runtime.sessions, incident_id)

    timeline = run(fetch())
    if timeline is None:
        fail(f"no incident #{incident_id}")
        return
    if as_json:
        console.print_json(json.dumps(timeline_dict(timeline)))
        return
    incident, updates, counts = timeline.incident, timeline.updates, timeline.deliveries
    status = DRAFT_LABEL if incident.status == "draft" else incident.status
    console.print(
        outside(f"#{incident.id} {incident.title}", "bold")
        + outside(f" — {status} ({incident.impact}), components: {', '.join(incident.components) or '—'}")
    )
    if incident.notes:  # customer text (the spike detector's samples)
        console.print(Panel(outside(incident.notes), title="Staff notes", expand=True))
    if incident.status == "draft":
        command = publish_command(incident_id)
        console.print(
            outside(f"Publish it: {command}\nDiscard it: broadcaster incident discard {incident_id}")
        )
        return
    zone = state(ctx).settings.brand.timezone
    table = Table(title=f"Timeline ({zone})")
    for column in ("update", "at", "status", "message", "ETA", "next update"):
        table.add_column(column)
    for previous, u in zip([None, *updates], updates, strict=False):
        table.add_row(
            str(u.id),
            local_time(u.created_at, zone),
            u.status,
            outside(what_it_said(u, previous)),
            local_time(u.eta_at, zone),
            local_time(u.next_update_at, zone),
        )
    console.print(table)
    console.print(delivery_table(counts))


def what_it_said(update: IncidentUpdate, previous: IncidentUpdate | None) -> str:
    """An update's message, or what it changed when it has none (a new status, impact, components)."""
    message = next(iter(update.messages.values()), "")
    if message or previous is None:
        return message
    changes = changes_between(previous, update)
    said = [f"status {update.status}"] if update.status != previous.status else []
    if changes.previous_impact:
        said.append(f"impact {changes.previous_impact} → {update.impact}")
    said += [f"+{c}" for c in changes.added] + [f"−{c}" for c in changes.removed]
    return f"({', '.join(said) or 'times only'})"


def register(app: typer.Typer) -> None:
    app.command("list")(user_errors(list_))
    app.command("show")(user_errors(show))
