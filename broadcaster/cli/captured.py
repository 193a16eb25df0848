"""`broadcaster captured`: what capture-mode channels would have sent, per channel and recipient.

A rehearsal without credentials sends nothing: this shows exactly what customers would have read
(title, every part; the HTML in `--json`), newest incident first, without opening the database.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from typing import Annotated

import typer
from rich.panel import Panel
from rich.rule import Rule
from rich.table import Table
from rich.text import Text

from broadcaster.cli.options import AsJson
from broadcaster.cli.outside import outside
from broadcaster.cli.runtime import console, open_runtime, run, state, user_errors
from broadcaster.delivery.captured import ALERT, ANSWER, Captured, find_captured
from broadcaster.localtime import local_time

__all__ = ["register"]


def _owner(entry: Captured) -> str:
    if entry.incident_id is None:
        return "staff alerts" if entry.what == ALERT else "answers not linked to an incident"
    return f"{entry.incident_kind} #{entry.incident_id} «{entry.incident_title}»"


def _summary(entries: Sequence[Captured], zone: str) -> Table:
    """How many messages each incident left on each channel, and when the last one was captured."""
    table = Table(title=f"Captured messages: nothing was sent ({zone})")
    for column in ("what for", "channel", "kind", "messages", "last captured"):
        table.add_column(column, justify="right" if column == "messages" else "left")
    counts = Counter((_owner(e), e.message.channel, e.what) for e in entries)
    last = {(_owner(e), e.message.channel, e.what): e.message.created_at for e in entries}
    for (owner, channel, what), n in counts.items():
        table.add_row(outside(owner), channel, what, str(n), local_time(last[(owner, channel, what)], zone))
    return table


def _panel(entry: Captured, zone: str) -> Panel:
    """One message as its recipient would have received it; the text is `outside`: no markup, no controls."""
    message, parts = entry.message, entry.parts
    body = Text()
    if message.title:
        body.append_text(outside(message.title + "\n\n", "bold"))
    for index, part in enumerate(parts, 1):
        if len(parts) > 1:
            body.append(f"── part {index}/{len(parts)} ──\n", style="dim")
        body.append_text(outside(part + "\n"))
    if message.html:
        body.append(f"(and an HTML version, {len(message.html)} characters: --json shows it)", style="dim")
    where = [entry.what]
    if entry.update_id is not None:
        where.append(f"update #{entry.update_id}")
    if entry.what == ANSWER and entry.conversation_id is not None:
        where.append(f"conversation #{entry.conversation_id}")
    where.append(local_time(message.created_at, zone))
    body.rstrip()
    return Panel(
        body if body.plain else Text("(empty)", style="dim"),
        title=outside(f"{message.channel} → {message.target}"),
        subtitle=" · ".join(where),
        border_style="magenta",
        expand=True,
    )


def register(root: typer.Typer) -> None:
    @root.command("captured")
    @user_errors
    def captured(
        ctx: typer.Context,
        incident: Annotated[int | None, typer.Option(help="Only what this incident sent.")] = None,
        channel: Annotated[str | None, typer.Option(help="Only this channel (email, telegram…).")] = None,
        limit: Annotated[int, typer.Option(min=0, help="At most this many messages (0: all).")] = 50,
        as_json: AsJson = False,
    ) -> None:
        """What capture-mode channels would have sent: per channel, per recipient, the rendered text."""
        settings = state(ctx).settings

        async def fetch() -> list[Captured]:
            async with open_runtime(settings) as runtime, runtime.sessions() as session:
                return await find_captured(session, incident_id=incident, channel=channel)

        entries = run(fetch())
        shown = entries[:limit] if limit else entries
        if as_json:
            console.print_json(json.dumps([entry.as_dict() for entry in shown]))
            return
        if not entries:
            console.print("Nothing captured: no message went to a capture-mode channel.")
            return
        zone = settings.brand.timezone
        console.print(_summary(entries, zone))
        owner = None
        for entry in shown:
            if _owner(entry) != owner:
                owner = _owner(entry)
                console.print(Rule(outside(owner, "bold")))
            console.print(_panel(entry, zone))
        if len(shown) < len(entries):
            console.print(
                f"[dim]{len(entries) - len(shown)} more not shown: --limit 0 shows all, "
                "--incident N or --channel C narrows.[/]"
            )
