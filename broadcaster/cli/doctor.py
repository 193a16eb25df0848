"""`broadcaster doctor`: check every configured channel for real before the crisis does."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Annotated

import typer
from rich.table import Table

from broadcaster.cli.outside import outside
from broadcaster.cli.runtime import console, open_runtime, run, state, user_errors
from broadcaster.config import Settings
from channels import build_channels
from channels.email_imap import ImapMailbox

CHECK_TIMEOUT = 30.0


@dataclass(frozen=True, slots=True)
class Diagnosis:
    name: str
    mode: str  # live, capture or settings
    ok: bool
    detail: str
    fix: str = ""


async def _mailbox_diagnosis(settings: Settings) -> list[Diagnosis]:
    """The IMAP reply mailbox, when replies are polled rather than received on the listener."""
    if not settings.channels.email.imap_enabled:
        return []
    mailbox = ImapMailbox(settings.channels.email)
    try:
        check = await asyncio.wait_for(mailbox.check(), CHECK_TIMEOUT)
        return [Diagnosis("email (IMAP)", "live", check.ok, check.detail, check.fix)]
    except TimeoutError:
        return [Diagnosis("email (IMAP)", "live", False, f"no answer within {CHECK_TIMEOUT:g} s",
                          "check channels.email.imap_host and imap_port")]  # fmt: skip
    finally:
        await mailbox.aclose()


def _settings_diagnoses(settings: Settings) -> list[Diagnosis]:
    found = []
    if not (settings.staff.email or settings.staff.telegram_chat_id):
        found.append(Diagnosis(
            "staff alerts", "settings", False, "no [staff] email or telegram_chat_id: alerts reach nobody",
            "set staff.email (on-call address) and/or staff.telegram_chat_id (a staff group with the bot)",
        ))  # fmt: skip
    base = settings.server.public_base_url
    if not base.startswith("https://"):
        found.append(Diagnosis(
            "links", "settings", False, f"server.public_base_url is {base}: customers cannot open it",
            "set server.public_base_url to the public https:// address of `broadcaster serve` "
            "(RFC 8058 one-click unsubscribe requires https)",
        ))  # fmt: skip
    return found


async def diagnose(settings: Settings) -> list[Diagnosis]:
    """Every channel's `check()` (live) or its capture status, plus settings that will hurt."""
    results = []
    async with open_runtime(settings) as runtime:
        for name, channel_runtime in build_channels(settings, runtime.sessions).items():
            channel = channel_runtime.channel
            if not channel_runtime.live:
                check = await channel.check()
                results.append(Diagnosis(name, "capture", True, check.detail, check.fix))
                continue
            try:
                check = await asyncio.wait_for(channel.check(), CHECK_TIMEOUT)
                results.append(Diagnosis(name, "live", check.ok, check.detail, check.fix))
            except TimeoutError:
                results.append(Diagnosis(name, "live", False, f"no answer within {CHECK_TIMEOUT:g} s",
                                         "check the provider's base URL and the network"))  # fmt: skip
            finally:
                await channel.aclose()
    return results + await _mailbox_diagnosis(settings) + _settings_diagnoses(settings)


def register(root: typer.Typer) -> None:
    @root.command("doctor")
    @user_errors
    def doctor(
        ctx: typer.Context,
        as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    ) -> None:
        """Check credentials and reachability of every channel; exit 1 if a live one is broken."""
        results = run(diagnose(state(ctx).settings))
        broken = [r for r in results if not r.ok and r.mode == "live"]
        if as_json:
            console.print_json(json.dumps([_as_dict(r) for r in results]))
        else:
            table = Table(title="broadcaster doctor")
            for column in ("channel", "mode", "status", "detail", "how to fix"):
                table.add_column(column)
            for r in results:
                status = (
                    "[green]ok[/]"
                    if r.ok
                    else ("[red]broken[/]" if r.mode == "live" else "[yellow]warning[/]")
                )
                table.add_row(r.name, r.mode, status, outside(r.detail), outside(r.fix))
            console.print(table)
        if broken:
            raise typer.Exit(1)


def _as_dict(diagnosis: Diagnosis) -> dict[str, object]:
    return {"channel": diagnosis.name, "mode": diagnosis.mode, "ok": diagnosis.ok, "detail": diagnosis.detail,
            "fix": diagnosis.fix}  # fmt: skip
