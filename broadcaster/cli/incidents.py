"""`broadcaster incident open|publish|discard|update|resolve|list|show`.

A draft (made by the spike detector) is not public until `incident publish`, which takes the
same options and checks as `incident open`; `incident discard` deletes it.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from broadcaster.cli.options import (
    Alternative,
    AlternativeTranslation,
    AsJson,
    Channels,
    CompensationTranslation,
    Eta,
    Force,
    ForceReason,
    Message,
    NextUpdate,
    NoWait,
    TitleTranslation,
    Translation,
    build_draft,
    parse_translations,
    row_number,
)
from broadcaster.cli.outside import outside
from broadcaster.cli.runtime import (
    Runtime,
    console,
    err_console,
    fail,
    open_runtime,
    run,
    state,
    user_errors,
)
from broadcaster.cli.views import delivery_table, fallback_lines, finding_lines
from broadcaster.delivery import outbox
from broadcaster.delivery.dispatch import Dispatcher
from broadcaster.delivery.runtimes import build_channels
from broadcaster.models import Incident
from broadcaster.publishing.incident_reads import published_dict
from broadcaster.publishing.incidents import (
    LintRefused,
    Published,
    discard_draft,
    open_incident,
    post_update,
    publish_draft,
    resolve_incident,
)

app = typer.Typer(help="Open, update, resolve and inspect incidents.", no_args_is_help=True)

AnswerConversations = Annotated[
    bool,
    typer.Option(
        "--answer-conversations/--no-answer-conversations",
        help="At resolution, answer every customer who wrote about the incident, in their own thread.",
    ),
]
HoldingMessages = Annotated[
    bool,
    typer.Option(
        "--holding-messages/--no-holding-messages",
        help="When a promised update is late, post the approved holding message (else only remind staff).",
    ),
]
Components = Annotated[list[str], typer.Option("--component", "-c", help="Affected component (repeatable).")]


def show_refusal(exc: LintRefused) -> None:
    err_console.print(finding_lines(exc.findings))
    fail(str(exc))


async def _deliver_with_progress(
    runtime: Runtime, published: Published, as_json: bool
) -> dict[str, dict[str, int]]:
    settings = runtime.settings
    dispatcher = Dispatcher(
        runtime.sessions,
        build_channels(settings, runtime.sessions),
        settings.dispatch,
        settings.server.public_base_url,
    )
    total = sum(published.deliveries.values())
    assert published.update.id is not None
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console,
        disable=as_json,
        transient=False,
    ) as progress:
        task = progress.add_task("Delivering", total=total)

        def on_progress(counts: dict[str, dict[str, int]]) -> None:
            done = sum(n for per in counts.values() for s, n in per.items() if s in outbox.TERMINAL)
            progress.update(task, completed=done)

        async with dispatcher:
            return await dispatcher.deliver([published.update.id], on_progress=on_progress)


def _report(
    runtime: Runtime, published: Published, counts: dict[str, dict[str, int]] | None, as_json: bool
) -> None:
    incident, update = published.incident, published.update
    if as_json:
        console.print_json(json.dumps(published_dict(published, counts)))
        return
    if published.findings:
        console.print(finding_lines(published.findings))
    if published.fallbacks:
        console.print(fallback_lines(runtime.settings, published.fallbacks))
    console.print(
        Text("Incident ")
        + outside(f"#{incident.id}", "bold")
        + outside(f" «{incident.title}» — {update.status}, update #{update.id}")
    )
    if counts is not None:
        console.print(delivery_table(counts))
        waiting = sum(per.get("pending", 0) + per.get("sending", 0) for per in counts.values())
        if waiting:
            console.print(
                f"[yellow]{waiting} deliveries wait for a retry; `broadcaster serve` will send them.[/]"
            )
    else:
        console.print(
            f"Queued {sum(published.deliveries.values())} deliveries; `broadcaster serve` sends them."
        )


async def publish_and_deliver(ctx: typer.Context, action, no_wait: bool, as_json: bool) -> None:  # type: ignore[no-untyped-def]
    settings = state(ctx).settings
    async with open_runtime(settings) as runtime:
        async with runtime.sessions() as session:
            try:
                published = await action(session, runtime)
            except LintRefused as exc:
                show_refusal(exc)
        counts = None if no_wait else await _deliver_with_progress(runtime, published, as_json)
        _report(runtime, published, counts, as_json)


@app.command("open")
@user_errors
def open_(
    ctx: typer.Context,
    title: Annotated[str, typer.Option(help="Short public title, e.g. 'Paiement indisponible'.")],
    message: Message,
    component: Components,
    impact: Annotated[str, typer.Option(help="none, minor, major or critical.")] = "major",
    status: Annotated[str, typer.Option(help="investigating, identified or monitoring.")] = "investigating",
    translation: Translation = None,
    title_translation: TitleTranslation = None,
    eta: Eta = None,
    next_update: NextUpdate = None,
    alternative: Alternative = None,
    alternative_translation: AlternativeTranslation = None,
    channel: Channels = None,
    answer_conversations: AnswerConversations = True,
    holding_messages: HoldingMessages = True,
    force: Force = False,
    reason: ForceReason = "",
    no_wait: NoWait = False,
    as_json: AsJson = False,
) -> None:
    """Open an incident and send its first update to every channel.

    Without --next-update the next update is promised by `[schedule] cadence_minutes` for the impact.
    """
    settings = state(ctx).settings
    draft = build_draft(
        settings,
        force_reason=reason,
        status=status,
        message=message,
        translation=translation,
        eta=eta,
        next_update=next_update,
        alternative=alternative,
        alternative_translation=alternative_translation,
        channels=channel,
    )
    titles = parse_translations(title_translation, "--title-translation")

    async def action(session, runtime):  # type: ignore[no-untyped-def]
        return await open_incident(
            session,
            settings,
            runtime.composer,
            title=title,
            impact=impact,
            components=component,
            draft=draft,
            title_translations=titles,
            force=force,
            answer_conversations=answer_conversations,
            holding_messages=holding_messages,
        )

    run(publish_and_deliver(ctx, action, no_wait, as_json))


@app.command("publish")
@user_errors
def publish(
    ctx: typer.Context,
    incident_id: Annotated[int, row_number("The draft's number (`incident list` shows drafts).")],
    message: Message,
    title: Annotated[str | None, typer.Option(help="Public title (default: the draft's).")] = None,
    component: Annotated[
        list[str] | None,
        typer.Option("--component", "-c", help="Affected component (repeatable; default: the draft's)."),
    ] = None,
    impact: Annotated[
        str | None, typer.Option(help="none, minor, major or critical (default: the draft's).")
    ] = None,
    status: Annotated[str, typer.Option(help="investigating, identified or monitoring.")] = "investigating",
    translation: Translation = None,
    title_translation: TitleTranslation = None,
    eta: Eta = None,
    next_update: NextUpdate = None,
    alternative: Alternative = None,
    alternative_translation: AlternativeTranslation = None,
    channel: Channels = None,
    force: Force = False,
    reason: ForceReason = "",
    no_wait: NoWait = False,
    as_json: AsJson = False,
) -> None:
    """Publish a draft incident: its first update goes to every channel, as with `incident open`.

    The customers whose reports made the draft are answered at once, in their own thread.
    """
    settings = state(ctx).settings
    draft = build_draft(
        settings,
        force_reason=reason,
        status=status,
        message=message,
        translation=translation,
        eta=eta,
        next_update=next_update,
        alternative=alternative,
        alternative_translation=alternative_translation,
        channels=channel,
    )
    titles = parse_translations(title_translation, "--title-translation")

    async def action(session, runtime):  # type: ignore[no-untyped-def]
        return await publish_draft(
            session,
            settings,
            runtime.composer,
            incident_id,
            title=title,
            impact=impact,
            components=component or None,
            draft=draft,
            title_translations=titles,
            force=force,
        )

    run(publish_and_deliver(ctx, action, no_wait, as_json))


@app.command("discard")
@user_errors
def discard(
    ctx: typer.Context,
    incident_id: Annotated[int, row_number("The draft's number.")],
    as_json: AsJson = False,
) -> None:
    """Delete a draft incident that turned out not to be one. Nothing was ever public."""

    async def action() -> Incident:
        async with open_runtime(state(ctx).settings) as runtime, runtime.sessions() as session:
            return await discard_draft(session, incident_id)

    incident = run(action())
    if as_json:
        console.print_json(
            json.dumps({"incident_id": incident.id, "title": incident.title, "discarded": True})
        )
        return
    console.print(
        Text("Draft ") + outside(f"#{incident.id}", "bold") + outside(f" «{incident.title}» discarded.")
    )


@app.command("update")
@user_errors
def update_(
    ctx: typer.Context,
    incident_id: Annotated[int, row_number("Incident number.")],
    message: Annotated[
        str, typer.Option("--message", "-m", help="What is new, in the brand's default locale.")
    ] = "",
    status: Annotated[
        str | None, typer.Option(help="investigating, identified or monitoring (default: unchanged).")
    ] = None,
    impact: Annotated[
        str | None, typer.Option(help="none, minor, major or critical (default: unchanged).")
    ] = None,
    component: Annotated[
        list[str] | None,
        typer.Option(
            "--component", "-c", help="Every component it affects now (repeatable; default: unchanged)."
        ),
    ] = None,
    translation: Translation = None,
    eta: Eta = None,
    next_update: NextUpdate = None,
    alternative: Alternative = None,
    alternative_translation: AlternativeTranslation = None,
    channel: Channels = None,
    force: Force = False,
    reason: ForceReason = "",
    no_wait: NoWait = False,
    as_json: AsJson = False,
) -> None:
    """Post a follow-up on an open incident: a message, or a new status, impact, components, ETA or
    next update (at least one thing new). The messages say what changed."""
    settings = state(ctx).settings
    draft = build_draft(
        settings,
        force_reason=reason,
        status=status or "",
        message=message,
        translation=translation,
        eta=eta,
        next_update=next_update,
        alternative=alternative,
        alternative_translation=alternative_translation,
        channels=channel,
    )

    async def action(session, runtime):  # type: ignore[no-untyped-def]
        return await post_update(
            session, settings, runtime.composer, incident_id, draft,
            impact=impact, components=component or None, force=force,
        )  # fmt: skip

    run(publish_and_deliver(ctx, action, no_wait, as_json))


@app.command("resolve")
@user_errors
def resolve_(
    ctx: typer.Context,
    incident_id: Annotated[int, row_number("Incident number.")],
    message: Message,
    compensation: Annotated[
        str | None, typer.Option(help="What customers get, e.g. '-10 % avec le code MERCI10'.")
    ] = None,
    compensation_translation: CompensationTranslation = None,
    translation: Translation = None,
    channel: Channels = None,
    answer_conversations: AnswerConversations = True,
    force: Force = False,
    reason: ForceReason = "",
    no_wait: NoWait = False,
    as_json: AsJson = False,
) -> None:
    """Announce the resolution (with thanks and compensation) and close the incident."""
    settings = state(ctx).settings
    draft = build_draft(
        settings,
        force_reason=reason,
        status="resolved",
        message=message,
        translation=translation,
        eta=None,
        next_update=None,
        compensation=compensation,
        compensation_translation=compensation_translation,
        channels=channel,
    )

    async def action(session, runtime):  # type: ignore[no-untyped-def]
        return await resolve_incident(
            session,
            settings,
            runtime.composer,
            incident_id,
            draft,
            force=force,
            answer_conversations=answer_conversations,
        )

    run(publish_and_deliver(ctx, action, no_wait, as_json))
