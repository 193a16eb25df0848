"""`broadcaster doctor`: check every configured channel for real before the crisis does."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Annotated

import typer
from rich.table import Table
from sqlmodel import col, select

from broadcaster.cli.outside import outside
from broadcaster.cli.runtime import console, open_runtime, run, state, user_errors
from broadcaster.config import Settings
from broadcaster.db import SessionFactory
from broadcaster.delivery.runtimes import open_channels
from broadcaster.delivery.shared_pacing import StoreDown, deployment_pacing
from broadcaster.drill.run import last_drill
from broadcaster.models import LoopState
from channels.email.imap import ImapMailbox

CHECK_TIMEOUT = 30.0
STRONG_SECRET_LENGTH = 32


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


async def _loop_diagnoses(sessions: SessionFactory) -> list[Diagnosis]:
    """Dispatch loops and pollers that a running `serve` or `worker` reported down (restarting)."""
    async with sessions() as session:
        rows = await session.exec(select(LoopState).where(col(LoopState.down)).order_by(col(LoopState.name)))
        return [
            Diagnosis(
                f"{row.name} loop", "live", False,
                f"down since {row.since:%Y-%m-%d %H:%M:%S} UTC ({row.error}, {row.restarts} restart(s)), "
                f"as {row.process} reported at {row.updated_at:%H:%M:%S} UTC",
                "read that process's log for the traceback; it restarts the loop by itself (every 60 s at "
                "most) and clears this once the loop runs again",
            )
            for row in rows
        ]  # fmt: skip


async def _pacing_diagnosis(settings: Settings, sessions: SessionFactory) -> list[Diagnosis]:
    """Where the workers keep the bots' shared budget, and whether it answers."""
    redis_url = settings.dispatch.redis_url
    pacing = deployment_pacing(redis_url.get_secret_value() if redis_url else None, sessions.kw.get("bind"))
    if pacing is None:
        return [Diagnosis("pacing", "settings", True, "in each worker (SQLite: run one worker)")]
    try:
        await asyncio.wait_for(pacing.store.ping(), CHECK_TIMEOUT)
        return [
            Diagnosis("pacing", "live", True, f"one budget per bot for every worker, in {pacing.store.label}")
        ]
    except (StoreDown, TimeoutError) as exc:
        fix = (
            "start Redis or fix dispatch.redis_url"
            if redis_url
            else "run `broadcaster init` (migration 0011)"
        )
        return [
            Diagnosis("pacing", "live", False, f"shared budget unreachable: {exc}; workers pace alone", fix)
        ]
    finally:
        await pacing.aclose()


async def _drill_diagnosis(sessions: SessionFactory) -> Diagnosis:
    """The latest `broadcaster drill`: when, and which channel failed (a warning, never broken)."""
    ok, detail = await last_drill(sessions)
    fix = "" if ok else "run `broadcaster drill` (a TEST message to the [drill] audience)"
    if not ok and not detail.startswith("never"):
        fix = "fix what `broadcaster drill` reported, then run it again"
    return Diagnosis("last drill", "settings", ok, detail, fix)


def _settings_diagnoses(settings: Settings) -> list[Diagnosis]:
    found = []
    if not (settings.staff.email or settings.staff.telegram_chat_id):
        found.append(Diagnosis(
            "staff alerts", "settings", False, "no [staff] email or telegram_chat_id: alerts reach nobody",
            "set staff.email (on-call address) and/or staff.telegram_chat_id (a staff group with the bot)",
        ))  # fmt: skip
    email = settings.channels.email
    if email.enabled and email.inbound_enabled and not settings.staff.email.strip():
        found.append(Diagnosis(
            "postmaster", "settings", False,
            f"no [staff] email: mail for postmaster@{email.reply_domain} is refused (RFC 5321 wants it read)",
            "set staff.email: postmaster mail is forwarded there",
        ))  # fmt: skip
    if email.enabled and (email.inbound_enabled or email.imap_enabled) and not email.inbound_authserv_id:
        found.append(Diagnosis(
            "reply senders", "settings", True,
            "a reply is verified by its From alone, which is easy to forge",
            "put a DMARC-checking MTA in front and set channels.email.inbound_authserv_id to its id",
        ))  # fmt: skip
    base = settings.server.public_base_url
    if not base.startswith("https://"):
        found.append(Diagnosis(
            "links", "settings", False, f"server.public_base_url is {base}: customers cannot open it",
            "set server.public_base_url to the public https:// address of `broadcaster serve` "
            "(RFC 8058 one-click unsubscribe requires https)",
        ))  # fmt: skip
    return found + _weak_secrets(settings)


def _weak_secrets(settings: Settings) -> list[Diagnosis]:
    """The secrets callers must present to us, when short enough to guess."""
    ours = {
        "channels.telegram.webhook_secret": settings.channels.telegram.webhook_secret,
        "channels.facebook.verify_token": settings.channels.facebook.verify_token,
    }
    return [
        Diagnosis(
            "secrets", "settings", False,
            f"{key} has {len(secret.get_secret_value())} characters: short enough to guess",
            f"set {key} to a random value of {STRONG_SECRET_LENGTH}+ characters, e.g. "
            "python -c 'import secrets; print(secrets.token_urlsafe(32))'",
        )
        for key, secret in ours.items()
        if secret is not None and len(secret.get_secret_value()) < STRONG_SECRET_LENGTH
    ]  # fmt: skip


async def diagnose(settings: Settings) -> list[Diagnosis]:
    """Every channel's `check()` (live) or its capture status, plus settings that will hurt."""
    results = []
    async with open_runtime(settings) as runtime:
        async with open_channels(settings, runtime.sessions) as runtimes:
            for name, channel_runtime in runtimes.items():
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
        results += await _loop_diagnoses(runtime.sessions)
        results += await _pacing_diagnosis(settings, runtime.sessions)
        results.append(await _drill_diagnosis(runtime.sessions))
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
