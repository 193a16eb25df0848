"""`broadcaster inbox`: every customer message from every channel, in one place, and the agent's answers.

`reply` only queues the answer: `broadcaster serve` sends it, and `inbox show` tells whether it
went out (sent, queued, or failed with the provider's reason).
"""

from __future__ import annotations

import getpass
import json
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import typer
from rich.table import Table

from broadcaster.cli.options import row_number
from broadcaster.cli.outside import outside
from broadcaster.cli.runtime import Runtime, console, fail, open_runtime, run, state, user_errors
from broadcaster.cli.views import answer_status, conversation_text, inbox_table
from broadcaster.db import SessionFactory
from broadcaster.errors import InvalidInput
from broadcaster.inbox import actions as inbox_actions
from broadcaster.inbox.filing import conversation_dict, conversation_with_messages, message_dict
from broadcaster.models import Conversation

app = typer.Typer(help="The shared inbox: customer messages from every channel.", no_args_is_help=True)
AsJson = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
ConversationId = Annotated[int, row_number("The conversation's number (see `inbox list`).")]
T = TypeVar("T")


def _with_runtime(ctx: typer.Context, work: Callable[[Runtime], Awaitable[T]]) -> T:
    async def go() -> T:
        async with open_runtime(state(ctx).settings) as runtime:
            return await work(runtime)

    return run(go())


@app.command("list")
@user_errors
def list_(
    ctx: typer.Context,
    open_only: Annotated[
        bool, typer.Option("--open", help="Only conversations waiting for an answer.")
    ] = False,
    status: Annotated[str | None, typer.Option(help="Only this status: open, pending or closed.")] = None,
    incident: Annotated[int | None, typer.Option(help="Only conversations about this incident.")] = None,
    assignee: Annotated[str | None, typer.Option(help="Only conversations assigned to NAME.")] = None,
    label: Annotated[str | None, typer.Option(help="Only conversations with this label.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many (1-500).")] = 100,
    as_json: AsJson = False,
) -> None:
    """Conversations, most recent first, with their last message."""
    if open_only and status not in (None, "open"):
        raise InvalidInput(f"--open and --status {status} contradict each other")
    wanted = "open" if open_only else status
    rows = _with_runtime(
        ctx,
        lambda runtime: inbox_actions.find_conversations(
            runtime.sessions, status=wanted, incident_id=incident, assignee=assignee, label=label, limit=limit
        ),
    )
    if as_json:
        console.print_json(json.dumps([conversation_dict(c, m) for c, m in rows]))
        return
    console.print(inbox_table(rows) if rows else "No conversation matches.")


@app.command("show")
@user_errors
def show(ctx: typer.Context, conversation_id: ConversationId, as_json: AsJson = False) -> None:
    """One conversation, every message in order; our answers say whether they went out."""
    found = _with_runtime(ctx, lambda runtime: conversation_with_messages(runtime.sessions, conversation_id))
    if found is None:
        fail(f"no conversation #{conversation_id}")
        return
    conversation, messages = found
    if as_json:
        console.print_json(
            json.dumps(conversation_dict(conversation) | {"messages": [message_dict(m) for m in messages]})
        )
        return
    console.print(conversation_text(conversation, messages, state(ctx).settings.brand.timezone))


@app.command("reply")
@user_errors
def reply(
    ctx: typer.Context,
    conversation_id: ConversationId,
    text: Annotated[str | None, typer.Argument(help="What to answer (or use --canned).")] = None,
    canned: Annotated[str | None, typer.Option(help="A canned reply's name (see `inbox canned`).")] = None,
    author: Annotated[
        str | None,
        typer.Option("--as", envvar="BROADCASTER_AGENT", help="Your name (default: your OS user name)."),
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Answer the customer in their own thread; the bot then stays quiet in this conversation."""
    agent = author or _os_user()
    message = _with_runtime(
        ctx,
        lambda runtime: inbox_actions.reply(
            runtime.sessions, runtime.settings, conversation_id, text=text, canned=canned, author=agent
        ),
    )
    if as_json:
        console.print_json(json.dumps(message_dict(message)))
        return
    line = outside(f"#{conversation_id} ← {message.author}: {message.text}")
    line.append(" [")
    line.append_text(answer_status(message))
    line.append("] `broadcaster serve` sends it.")
    console.print(line)


def _os_user() -> str:
    try:
        return getpass.getuser()
    except OSError:  # no user name in the environment nor the password database
        raise InvalidInput("who is answering? give --as NAME or set BROADCASTER_AGENT") from None


@app.command("canned")
@user_errors
def canned(
    ctx: typer.Context,
    locale: Annotated[
        str | None, typer.Option(help="Language of the replies (default: the brand's).")
    ] = None,
    as_json: AsJson = False,
) -> None:
    """The canned replies, each previewed as a customer would read it now."""
    settings = state(ctx).settings
    language = locale or settings.brand.default_locale
    previews = _with_runtime(
        ctx, lambda runtime: inbox_actions.canned_previews(runtime.sessions, settings, language)
    )
    if as_json:
        console.print_json(
            json.dumps([{"name": p.name, "text": p.text, "problem": p.problem} for p in previews])
        )
        return
    table = Table(title=outside(f"Canned replies ({language})"))
    table.add_column("name", style="bold")
    table.add_column("preview")
    for preview in previews:
        table.add_row(
            outside(preview.name),
            outside(preview.text) if not preview.problem else outside(preview.problem, "red"),
        )
    console.print(table if previews else "No canned replies in this language.")


@app.command("assign")
@user_errors
def assign(
    ctx: typer.Context,
    conversation_id: ConversationId,
    name: Annotated[str, typer.Argument(help='The agent; "" unassigns.')],
    as_json: AsJson = False,
) -> None:
    """Give the conversation to an agent."""
    _change(ctx, as_json, lambda sessions: inbox_actions.assign(sessions, conversation_id, name))


@app.command("label")
@user_errors
def label(
    ctx: typer.Context,
    conversation_id: ConversationId,
    add: Annotated[list[str] | None, typer.Option("--add", help="Label to add (repeatable).")] = None,
    remove: Annotated[
        list[str] | None, typer.Option("--remove", help="Label to remove (repeatable).")
    ] = None,
    as_json: AsJson = False,
) -> None:
    """Add or remove labels (a-z, 0-9, '_' and '-', up to 32 characters)."""
    if not add and not remove:
        raise InvalidInput("give --add LABEL or --remove LABEL")
    _change(
        ctx, as_json, lambda sessions: inbox_actions.label(sessions, conversation_id, add or [], remove or [])
    )


@app.command("close")
@user_errors
def close(ctx: typer.Context, conversation_id: ConversationId, as_json: AsJson = False) -> None:
    """Done with it; the bot may answer this customer again when they next write."""
    _change(ctx, as_json, lambda sessions: inbox_actions.close(sessions, conversation_id))


@app.command("reopen")
@user_errors
def reopen(ctx: typer.Context, conversation_id: ConversationId, as_json: AsJson = False) -> None:
    """Open it again: it needs an answer."""
    _change(ctx, as_json, lambda sessions: inbox_actions.reopen(sessions, conversation_id))


def _change(
    ctx: typer.Context, as_json: bool, action: Callable[[SessionFactory], Awaitable[Conversation]]
) -> None:
    conversation = _with_runtime(ctx, lambda runtime: action(runtime.sessions))
    if as_json:
        console.print_json(json.dumps(conversation_dict(conversation)))
        return
    labels = ", ".join(conversation.labels) or "none"
    assigned = f"assigned to {conversation.assignee}" if conversation.assignee else "unassigned"
    line = outside(f"#{conversation.id} {conversation.status} · {assigned} · labels: {labels}")
    console.print(line)
