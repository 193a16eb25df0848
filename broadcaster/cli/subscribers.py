"""`broadcaster subscribers add|import|list|export|delete`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table
from rich.text import Text

from broadcaster.cli.outside import outside
from broadcaster.cli.runtime import console, err_console, fail, open_runtime, run, state, user_errors
from broadcaster.delivery.erasure import Erased, erase_subscriber
from broadcaster.delivery.subscriber_reads import export_csv, find_subscriptions, subscription_dict
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
    search: Annotated[str, typer.Option(help="Part of an address or a name.")] = "",
    channel: Annotated[str | None, typer.Option(help="Only this channel.")] = None,
    after: Annotated[int, typer.Option(help="Start after this subscription number (the next page).")] = 0,
    limit: Annotated[int, typer.Option(help="At most this many rows.")] = 100,
    as_json: AsJson = False,
) -> None:
    """List subscriptions with their state, by number (`--after` the last one shown for the next page)."""

    async def fetch() -> list[tuple[Subscription, Subscriber]]:
        async with open_runtime(state(ctx).settings) as runtime:
            return await find_subscriptions(
                runtime.sessions, search=search, channel=channel, after_id=after, limit=limit
            )

    rows = run(fetch())
    if as_json:
        console.print_json(json.dumps([subscription_dict(s, p) for s, p in rows]))
        return
    table = Table(title="Subscriptions")
    for column in ("#", "person", "channel", "address", "locale", "components", "state"):
        table.add_column(column)
    for s, p in rows:
        state_text = (
            Text("active", "green")
            if s.active
            else Text("inactive ", "red") + outside(f"({s.deactivated_reason})")
        )
        components = ", ".join(s.components) or "all"
        table.add_row(str(s.id), str(p.id), s.channel, outside(s.address), p.locale, components, state_text)
    console.print(table if rows else "No subscription matches.")


@app.command("export")
@user_errors
def export(
    ctx: typer.Context,
    path: Annotated[
        Path | None, typer.Argument(help="Write the CSV here (default: the standard output).")
    ] = None,
) -> None:
    """Every active subscriber as the CSV `subscribers import` reads back."""

    async def fetch() -> str:
        async with open_runtime(state(ctx).settings) as runtime:
            return await export_csv(runtime.sessions)

    text = run(fetch())
    if path is None:
        typer.echo(text, nl=False)
        return
    path.write_text(text, encoding="utf-8")
    err_console.print(f"{text.count(chr(10)) - 1} subscriber(s) written to {path}", highlight=False)


@app.command("delete")
@user_errors
def delete(
    ctx: typer.Context,
    subscriber_id: Annotated[int, typer.Argument(help="The person's number (`subscribers list`: person).")],
    as_json: AsJson = False,
) -> None:
    """Erase a person and everything we hold on them (GDPR): subscriptions, messages to them, their
    conversations in the inbox. It cannot be undone."""

    async def erase() -> Erased:
        async with open_runtime(state(ctx).settings) as runtime:
            return await erase_subscriber(runtime.sessions, subscriber_id)

    erased = run(erase())
    if as_json:
        console.print_json(json.dumps(erased.as_dict()))
        return
    console.print(
        f"Subscriber #{subscriber_id} erased: {erased.subscriptions} subscription(s), {erased.deliveries} "
        f"message(s) to them, {erased.conversations} conversation(s) with {erased.messages} message(s), "
        f"{erased.captured} captured, {erased.inbound_records} raw record(s)."
    )
