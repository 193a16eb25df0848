"""`broadcaster inbox list|show`: every customer message from every channel, in one place."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from broadcaster.cli.runtime import console, fail, open_runtime, run, state, user_errors
from broadcaster.inbox import conversation_dict, conversation_with_messages, list_conversations, message_dict

app = typer.Typer(help="The shared inbox: customer messages from every channel.", no_args_is_help=True)
AsJson = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


@app.command("list")
@user_errors
def list_(
    ctx: typer.Context,
    open_only: Annotated[
        bool, typer.Option("--open", help="Only conversations waiting for an answer.")
    ] = False,
    incident: Annotated[int | None, typer.Option(help="Only conversations about this incident.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many.")] = 100,
    as_json: AsJson = False,
) -> None:
    """Conversations, most recent first, with their last message."""

    async def fetch():  # type: ignore[no-untyped-def]
        async with open_runtime(state(ctx).settings) as runtime:
            return await list_conversations(
                runtime.sessions, open_only=open_only, incident_id=incident, limit=limit
            )

    rows = run(fetch())
    if as_json:
        console.print_json(json.dumps([conversation_dict(c, m) for c, m in rows]))
        return
    table = Table(title="Inbox")
    for column in ("#", "channel", "customer", "status", "incident", "intent", "last message"):
        table.add_column(column)
    for conversation, latest in rows:
        table.add_row(
            str(conversation.id), conversation.channel,
            escape(conversation.customer_name or conversation.customer_handle), conversation.status,
            f"#{conversation.incident_id}" if conversation.incident_id else "—",
            latest.intent if latest else "", escape(latest.text[:80]) if latest else "",
        )  # fmt: skip
    console.print(table if rows else "The inbox is empty.")


@app.command("show")
@user_errors
def show(
    ctx: typer.Context, conversation_id: Annotated[int, typer.Argument()], as_json: AsJson = False
) -> None:
    """One conversation, every message in order."""

    async def fetch():  # type: ignore[no-untyped-def]
        async with open_runtime(state(ctx).settings) as runtime:
            return await conversation_with_messages(runtime.sessions, conversation_id)

    found = run(fetch())
    if found is None:
        fail(f"no conversation #{conversation_id}")
        return
    conversation, messages = found
    if as_json:
        console.print_json(
            json.dumps(conversation_dict(conversation) | {"messages": [message_dict(m) for m in messages]})
        )
        return
    who = escape(conversation.customer_name or conversation.customer_handle)
    console.print(f"[bold]#{conversation.id}[/] {conversation.channel} · {who} · {conversation.status}")
    for message in messages:
        arrow = "←" if message.direction == "in" else "→"
        console.print(
            f"{message.created_at:%Y-%m-%d %H:%M} {arrow} [dim]{message.intent}[/] {escape(message.text)}"
        )
