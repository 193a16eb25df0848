"""`broadcaster subscribers add|import|list`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table
from rich.text import Text
from sqlmodel import col, select

from broadcaster.cli.outside import outside
from broadcaster.cli.runtime import console, err_console, fail, open_runtime, run, state, user_errors
from broadcaster.delivery.subscribers import (
    ADDRESS_COLUMNS,
    CSV_COLUMNS,
    ImportError_,
    ImportReport,
    NewSubscriber,
    import_subscribers,
    parse_csv,
)
from broadcaster.models import Subscriber, Subscription

app = typer.Typer(help="Manage who receives updates.", no_args_is_help=True)
AsJson = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


@app.command("add")
@user_errors
def add(
    ctx: typer.Context,
    email: Annotated[str, typer.Option(help="E-mail address.")] = "",
    telegram: Annotated[str, typer.Option("--telegram", help="Telegram chat id.")] = "",
    locale: Annotated[str, typer.Option(help="fr, en, fr_CA…")] = "",
    component: Annotated[
        list[str] | None, typer.Option("--component", "-c", help="Only these (repeatable).")
    ] = None,
    name: Annotated[str, typer.Option(help="Display name.")] = "",
    push: Annotated[
        str,
        typer.Option(help="App or browser push: fcm:<registration token> or webpush:<subscription JSON>."),
    ] = "",
    address: Annotated[
        list[str] | None,
        typer.Option("--address", help="CHANNEL:ADDRESS on any channel people subscribe on (repeatable)."),
    ] = None,
) -> None:
    """Subscribe one person by e-mail, Telegram, push or any subscriber channel."""
    settings = state(ctx).settings
    others: dict[str, str] = {}
    for given in address or ():
        channel, colon, value = given.partition(":")
        if not colon or channel not in ADDRESS_COLUMNS:
            fail(f"--address {given!r}: write CHANNEL:ADDRESS, CHANNEL one of {', '.join(ADDRESS_COLUMNS)}")
        others[channel] = value
    entry = NewSubscriber(
        addresses=others,
        email=email,
        telegram_chat_id=telegram,
        push=push,
        locale=locale or settings.brand.default_locale,
        components=tuple(component or ()),
        name=name,
        line=1,
    )

    async def save() -> tuple[int, int]:
        async with open_runtime(settings) as runtime, runtime.sessions() as session:
            report = await import_subscribers(session, settings, [entry])
            return report.subscriptions, report.already_subscribed

    try:
        added, existing = run(save())
    except ImportError_ as exc:
        fail("; ".join(p.removeprefix("line 1: ") for p in exc.problems))
        return
    console.print(f"Added {added} subscription(s)" + (f", {existing} already existed." if existing else "."))


@app.command("import")
@user_errors
def import_(
    ctx: typer.Context,
    path: Annotated[
        Path, typer.Argument(help="CSV: " + ",".join(CSV_COLUMNS) + " (one address column at least)")
    ],
    as_json: AsJson = False,
) -> None:
    """Import a CSV; every line is checked first and nothing is written if one is bad."""
    settings = state(ctx).settings
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"{path}: cannot read ({exc})")
        return
    entries, problems = parse_csv(text)
    if problems:
        fail(f"{path}: " + "\n".join(problems))

    async def save() -> ImportReport:
        async with open_runtime(settings) as runtime, runtime.sessions() as session:
            with Progress(
                TextColumn("[bold]Importing"),
                BarColumn(),
                MofNCompleteColumn(),
                console=err_console,
                disable=as_json,
            ) as progress:
                task = progress.add_task("import", total=len(entries))
                return await import_subscribers(
                    session, settings, entries, on_progress=lambda n: progress.update(task, completed=n)
                )

    try:
        report = run(save())
    except ImportError_ as exc:
        heading = outside(f"{path}: {len(exc.problems)} bad line(s), nothing imported:")
        err_console.print(Text("error: ", "bold red") + heading, highlight=False)
        for problem in exc.problems:
            err_console.print(outside(f"  {problem}"), highlight=False)
        raise typer.Exit(2) from None
    if as_json:
        console.print_json(json.dumps(report.__dict__))
        return
    console.print(
        f"Imported {report.subscribers} subscriber(s), {report.subscriptions} subscription(s); "
        f"{report.already_subscribed} already subscribed."
    )


@app.command("list")
@user_errors
def list_(
    ctx: typer.Context,
    limit: Annotated[int, typer.Option(help="At most this many rows.")] = 100,
    as_json: AsJson = False,
) -> None:
    """List subscriptions with their state."""

    async def fetch() -> list[tuple[Subscription, Subscriber]]:
        async with open_runtime(state(ctx).settings) as runtime, runtime.sessions() as session:
            statement = (
                select(Subscription, Subscriber)
                .join(Subscriber, col(Subscriber.id) == col(Subscription.subscriber_id))
                .order_by(col(Subscription.id))
                .limit(limit)
            )
            return list(await session.exec(statement))

    rows = run(fetch())
    if as_json:
        console.print_json(
            json.dumps(
                [
                    {
                        "id": s.id,
                        "subscriber_id": p.id,
                        "name": p.name,
                        "channel": s.channel,
                        "address": s.address,
                        "locale": p.locale,
                        "components": s.components,
                        "active": s.active,
                        "deactivated_reason": s.deactivated_reason,
                    }
                    for s, p in rows
                ]
            )
        )
        return
    table = Table(title="Subscriptions")
    for column in ("#", "channel", "address", "locale", "components", "state"):
        table.add_column(column)
    for s, p in rows:
        state_text = (
            Text("active", "green")
            if s.active
            else Text("inactive ", "red") + outside(f"({s.deactivated_reason})")
        )
        components = ", ".join(s.components) or "all"
        table.add_row(str(s.id), s.channel, outside(s.address), p.locale, components, state_text)
    console.print(table)
