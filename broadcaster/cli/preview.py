"""`broadcaster preview`: every channel's rendering with the crisis linter's findings. Sends nothing."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from broadcaster.cli.options import (
    Alternative,
    AlternativeTranslation,
    AsJson,
    Channels,
    CompensationTranslation,
    Eta,
    Message,
    NextUpdate,
    TitleTranslation,
    Translation,
    build_draft,
    parse_translations,
)
from broadcaster.cli.runtime import console, open_runtime, run, state, user_errors
from broadcaster.cli.views import fallback_lines, finding_lines, message_panel
from broadcaster.compose.render import Composer
from broadcaster.config import Settings
from broadcaster.db import DatabaseNotReady
from broadcaster.delivery.audience import readers_by_locale
from broadcaster.message import MessageKind
from broadcaster.publishing.drafting import fallbacks, preview
from broadcaster.publishing.preview_document import preview_dict


async def _readers(settings: Settings, channels: list[str], components: list[str]) -> dict[str, int]:
    """Subscribers per locale who would receive it; none counted before `broadcaster init`."""
    try:
        async with open_runtime(settings) as runtime, runtime.sessions() as session:
            return await readers_by_locale(session, settings, channels, components)
    except DatabaseNotReady:
        return {}


def register(root: typer.Typer) -> None:
    @root.command("preview")
    @user_errors
    def preview_cmd(
        ctx: typer.Context,
        message: Message,
        component: Annotated[
            list[str], typer.Option("--component", "-c", help="Affected component (repeatable).")
        ],
        status: Annotated[
            str, typer.Option(help="investigating, identified, monitoring or resolved.")
        ] = "investigating",
        title: Annotated[str, typer.Option(help="Incident title.")] = "Incident",
        impact: Annotated[str, typer.Option(help="none, minor, major or critical.")] = "major",
        first: Annotated[
            bool, typer.Option("--first/--follow-up", help="Is this the incident's first update?")
        ] = True,
        translation: Translation = None,
        title_translation: TitleTranslation = None,
        eta: Eta = None,
        next_update: NextUpdate = None,
        alternative: Alternative = None,
        alternative_translation: AlternativeTranslation = None,
        compensation: Annotated[str | None, typer.Option(help="Compensation (resolution).")] = None,
        compensation_translation: CompensationTranslation = None,
        channel: Channels = None,
        as_json: AsJson = False,
    ) -> None:
        """Show every channel's rendering of an update with the crisis linter's warnings. Sends nothing."""
        settings = state(ctx).settings
        draft = build_draft(
            settings,
            status=status,
            message=message,
            translation=translation,
            eta=eta,
            next_update=next_update,
            alternative=alternative,
            compensation=compensation,
            alternative_translation=alternative_translation,
            compensation_translation=compensation_translation,
            channels=channel,
        )
        kind: MessageKind = "resolved" if status == "resolved" else "update"
        composer = Composer(settings.templates_dir or None, default_locale=settings.brand.default_locale)
        result = preview(
            settings,
            composer,
            title=title,
            impact=impact,
            components=component,
            draft=draft,
            kind=kind,
            is_first=first and kind == "update",
            title_translations=parse_translations(title_translation, "--title-translation"),
        )
        fallback = fallbacks(result.untranslated, run(_readers(settings, list(result.renders), component)))
        if as_json:
            console.print_json(json.dumps(preview_dict(result, fallback)))
            return
        for per_locale in result.renders.values():
            for message_ in per_locale.values():
                sample = f"{settings.server.public_base_url.rstrip('/')}/unsubscribe/<token>"
                console.print(message_panel(message_.personalise(unsubscribe_url=sample), result.findings))
        if fallback:
            console.print(fallback_lines(settings, fallback))
        general = [f for f in result.findings if not f.channel]
        if general:
            console.print(finding_lines(general))
        else:
            console.print("[green]The crisis linter found nothing to fix.[/]")
