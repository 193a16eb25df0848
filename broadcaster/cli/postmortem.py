"""`broadcaster incident postmortem <id>`: draft, save and publish an incident's report.

Without `--publish` the draft (or the file given with `--from-file`) is saved on the incident and
printed. With `--publish` the saved report goes to the blog channel and is delivered like an update.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markdown import Markdown
from sqlmodel.ext.asyncio.session import AsyncSession

from broadcaster.cli.incidents import publish_and_deliver
from broadcaster.cli.options import AsJson, Force, NoWait, row_number
from broadcaster.cli.runtime import Runtime, console, err_console, open_runtime, run, state, user_errors
from broadcaster.config import Settings
from broadcaster.models import Incident
from broadcaster.publishing.postmortem import (
    PostmortemError,
    draft_postmortem,
    missing_sections,
    publish_postmortem,
    save_postmortem,
)

__all__ = ["postmortem", "register"]

CLI_AUTHOR = "cli"


def register(group: typer.Typer) -> None:
    """Add the `postmortem` command to the `incident` group."""
    group.command("postmortem")(user_errors(postmortem))


def _read_report(path: Path) -> str:
    """The edited Markdown of `--from-file`; a clear error when it cannot be used."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PostmortemError(f"--from-file {path}: no such file") from None
    except UnicodeDecodeError:
        raise PostmortemError(f"--from-file {path}: not UTF-8 text") from None
    except OSError as exc:
        raise PostmortemError(f"--from-file {path}: cannot read it ({exc.strerror})") from None
    if not text.strip():
        raise PostmortemError(f"--from-file {path}: the file is empty")
    return text


async def _draft_and_save(
    runtime: Runtime, incident_id: int, *, locale: str | None, cause: str, changes: str, from_file: str | None
) -> tuple[Incident, bool]:
    """Save the file's report or a fresh draft; also say whether an earlier report was replaced."""
    async with runtime.sessions() as session:
        if from_file is None:
            markdown = await draft_postmortem(
                session, runtime.settings, incident_id, locale=locale, cause=cause, changes=changes
            )
        else:
            markdown = from_file
        existing = await session.get(Incident, incident_id)
        replaced = bool(existing is not None and existing.postmortem and existing.postmortem != markdown)
        return await save_postmortem(session, incident_id, markdown), replaced


def _show(incident: Incident, replaced: bool, as_json: bool) -> None:
    markdown = incident.postmortem or ""
    if as_json:
        console.print_json(json.dumps({"incident_id": incident.id, "markdown": markdown}))
        return
    console.print(Markdown(markdown))
    if replaced:
        err_console.print("[yellow]The postmortem saved earlier was replaced.[/]")
    missing = missing_sections(markdown)
    next_step = f"broadcaster incident postmortem {incident.id} --publish"
    if missing:
        err_console.print(
            f"[yellow]Still to write: {', '.join(missing)}.[/] Pass --cause/--changes, or edit the text "
            f"and save it with --from-file FILE; then publish: {next_step}",
            highlight=False,
        )
    else:
        err_console.print(
            f"Saved on incident #{incident.id}. Publish it on the blog: {next_step}", highlight=False
        )


def postmortem(
    ctx: typer.Context,
    incident_id: Annotated[int, row_number("The resolved incident's number.")],
    cause: Annotated[str, typer.Option(help="Why it happened, in plain words (the report's Cause).")] = "",
    changes: Annotated[str, typer.Option(help="What we change so it happens less (What we change).")] = "",
    locale: Annotated[
        str | None, typer.Option(help="Language of the draft: fr or en (default: the brand's).")
    ] = None,
    from_file: Annotated[
        Path | None,
        typer.Option("--from-file", help="Save this edited Markdown report instead of a fresh draft."),
    ] = None,
    publish: Annotated[bool, typer.Option("--publish", help="Post the saved report on the blog.")] = False,
    force: Force = False,
    no_wait: NoWait = False,
    as_json: AsJson = False,
) -> None:
    """Draft an incident's postmortem report from its timeline, save it, or publish it on the blog.

    Draft: `postmortem 12 --cause … --changes …`; edit the printed Markdown and save it with
    `--from-file report.md`; then `postmortem 12 --publish`. `--force` publishes again.
    """
    settings = state(ctx).settings
    edited = _read_report(from_file) if from_file is not None else None
    if not publish:

        async def save() -> tuple[Incident, bool]:
            async with open_runtime(settings) as runtime:
                return await _draft_and_save(
                    runtime, incident_id, locale=locale, cause=cause, changes=changes, from_file=edited
                )

        incident, replaced = run(save())
        _show(incident, replaced, as_json)
        return

    async def action(session, runtime):  # type: ignore[no-untyped-def]
        await _prepare(session, settings, incident_id, locale, cause, changes, edited, force)
        return await publish_postmortem(
            session, settings, runtime.composer, incident_id, author=CLI_AUTHOR, force=force
        )

    run(publish_and_deliver(ctx, action, no_wait, as_json))


async def _prepare(
    session: AsyncSession,
    settings: Settings,
    incident_id: int,
    locale: str | None,
    cause: str,
    changes: str,
    edited: str | None,
    force: bool,
) -> None:
    """Before publishing: save the edited file, or draft one when none is saved or new words are given.

    A fresh draft that still has placeholders is refused before anything is saved.
    """
    incident = await session.get(Incident, incident_id)
    if edited is not None:
        markdown = edited
    elif incident is not None and incident.postmortem and not (cause or changes or locale):
        return
    else:
        markdown = await draft_postmortem(
            session, settings, incident_id, locale=locale, cause=cause, changes=changes
        )
    missing = missing_sections(markdown)
    if missing and not force:
        raise PostmortemError(
            f"the postmortem still has a placeholder for: {', '.join(missing)}; pass --cause and --changes, "
            f"or draft it (broadcaster incident postmortem {incident_id}), edit it and use --from-file"
        )
    await save_postmortem(session, incident_id, markdown)
