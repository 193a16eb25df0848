"""Options shared by the commands that write updates, and the draft they build."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import typer

from broadcaster.config import Settings
from broadcaster.errors import InvalidInput
from broadcaster.models import MAX_ROW_ID, utcnow
from broadcaster.publishing.drafting import UpdateDraft
from broadcaster.timeparse import parse_future

Message = Annotated[str, typer.Option("--message", "-m", help="The update, in the brand's default locale.")]
Translation = Annotated[
    list[str] | None,
    typer.Option("--translation", "-t", help="Another locale's text, as LOCALE:TEXT (e.g. en:'We are…')."),
]
TitleTranslation = Annotated[
    list[str] | None,
    typer.Option("--title-translation", help="The title in another locale, as LOCALE:TEXT (repeatable)."),
]
AlternativeTranslation = Annotated[
    list[str] | None,
    typer.Option(
        "--alternative-translation", help="The alternative in another locale, as LOCALE:TEXT (repeatable)."
    ),
]
CompensationTranslation = Annotated[
    list[str] | None,
    typer.Option(
        "--compensation-translation", help="The compensation in another locale, as LOCALE:TEXT (repeatable)."
    ),
]
Eta = Annotated[str | None, typer.Option(help="When service should be back: 30m, 2h, 14:30, ISO date-time.")]
NextUpdate = Annotated[
    str | None, typer.Option("--next-update", help="When the next update will come (30m, 15:00…).")
]
Alternative = Annotated[
    str | None, typer.Option(help="How customers can still order (overrides the brand's default).")
]
Channels = Annotated[list[str] | None, typer.Option("--channel", help="Only these channels (repeatable).")]
Force = Annotated[bool, typer.Option("--force", help="Publish even if the crisis linter finds errors.")]
ForceReason = Annotated[str, typer.Option("--reason", help="Why --force: kept in the audit log.")]
NoWait = Annotated[bool, typer.Option("--no-wait", help="Only queue the deliveries; `serve` sends them.")]
AsJson = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def row_number(help_text: str = "") -> Any:
    """A row's number as an argument: one no row can have (0, -1, past 2^63 - 1) is a usage error
    naming the argument, before any query."""
    return typer.Argument(help=help_text or None, min=1, max=MAX_ROW_ID)


def parse_translations(values: list[str] | None, option: str = "--translation") -> dict[str, str]:
    """LOCALE:TEXT values of a repeatable option; the error names `option`."""
    result: dict[str, str] = {}
    for value in values or []:
        locale, sep, text = value.partition(":")
        if not sep or not locale.strip():
            raise InvalidInput(f"{option} {value!r}: write LOCALE:TEXT, e.g. en:'Checkout is down'")
        result[locale.strip()] = text
    return result


def build_draft(
    settings: Settings,
    *,
    status: str,
    message: str,
    translation: list[str] | None,
    eta: str | None,
    next_update: str | None,
    alternative: str | None = None,
    compensation: str | None = None,
    channels: list[str] | None = None,
    alternative_translation: list[str] | None = None,
    compensation_translation: list[str] | None = None,
    force_reason: str = "",
) -> UpdateDraft:
    now, brand = utcnow(), settings.brand
    return UpdateDraft(
        status=status,
        message=message,
        translations=parse_translations(translation),
        eta_at=parse_future("--eta", eta, now=now, brand=brand) if eta else None,
        next_update_at=(
            parse_future("--next-update", next_update, now=now, brand=brand) if next_update else None
        ),
        alternative=alternative,
        compensation=compensation,
        alternative_translations=parse_translations(alternative_translation, "--alternative-translation"),
        compensation_translations=parse_translations(compensation_translation, "--compensation-translation"),
        channels=tuple(channels or ()),
        force_reason=force_reason.strip()[:300],
    )


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None
