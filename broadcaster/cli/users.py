"""`broadcaster users …`, `broadcaster tokens …` and `broadcaster audit`: the staff, their API tokens and
the record of who changed what."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Annotated, TypeVar
from zoneinfo import ZoneInfo

import typer
from rich.table import Table

from broadcaster.auth import tokens as token_store
from broadcaster.auth import users as user_store
from broadcaster.auth.audit import find_events
from broadcaster.auth.roles import ROLES
from broadcaster.cli.options import AsJson
from broadcaster.cli.outside import outside
from broadcaster.cli.runtime import console, open_runtime, run, state, user_errors
from broadcaster.config import Settings
from broadcaster.db import SessionFactory
from broadcaster.errors import InvalidInput
from broadcaster.localtime import local_time
from broadcaster.models import StaffUser, utcnow
from broadcaster.web.staff_api import audit_dict, token_dict, user_dict

__all__ = ["register_audit", "setup_url", "tokens_app", "users_app"]

users_app = typer.Typer(help="Staff users: who may sign in, with which role.", no_args_is_help=True)
tokens_app = typer.Typer(help="API tokens of staff users (scripts, monitoring).", no_args_is_help=True)

_ROLE_HELP = f"One of {', '.join(ROLES)}."
_SPAN = re.compile(r"^\s*(\d{1,5})\s*([mhd])\s*$")
_UNIT = {"m": "minutes", "h": "hours", "d": "days"}
T = TypeVar("T")


def setup_url(settings: Settings, secret: str) -> str:
    return f"{settings.server.public_base_url.rstrip('/')}/setup/{secret}"


def _span_or_time(option: str, value: str, settings: Settings) -> timedelta | datetime:
    span = _SPAN.match(value)
    if span:
        return timedelta(**{_UNIT[span[2]]: int(span[1])})
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise InvalidInput(
            f"{option} {value!r}: use 30m, 12h, 7d or an ISO date-time (2026-12-24T18:00)"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=ZoneInfo(settings.brand.timezone))


def _with_sessions(settings: Settings, work: Callable[[SessionFactory], Awaitable[T]]) -> T:
    async def go() -> T:
        async with open_runtime(settings) as runtime:
            return await work(runtime.sessions)

    return run(go())


def _state(user: StaffUser) -> str:
    if user.disabled:
        return "[red]disabled[/]"
    return "active" if user.password_hash else "[dim]not set up[/]"


def _local(settings: Settings, value: datetime | None) -> str:
    return local_time(value, settings.brand.timezone) if value else "—"


Email = Annotated[str, typer.Argument(help="The user's e-mail address.")]


@users_app.command("add")
@user_errors
def add(
    ctx: typer.Context,
    email: Email,
    role: Annotated[str, typer.Option("--role", help=_ROLE_HELP)],
    name: Annotated[
        str, typer.Option("--name", help="Display name (default: the e-mail's local part).")
    ] = "",
    locale: Annotated[str, typer.Option("--locale", help="fr or en: the language of their pages.")] = "fr",
) -> None:
    """Add a staff user; prints their one-time set-up link (valid 24 h) to choose a password."""
    settings = state(ctx).settings
    added = _with_sessions(settings, lambda s: user_store.add_user(s, email, name, role, locale))
    console.print(f"Added {added.user.email} ({added.user.role}). Set-up link, valid 24 h, works once:")
    console.print(setup_url(settings, added.setup_secret), soft_wrap=True, highlight=False)


@users_app.command("list")
@user_errors
def list_(ctx: typer.Context, as_json: AsJson = False) -> None:
    """Every staff user: role, second factor, last sign-in."""
    settings = state(ctx).settings
    found = _with_sessions(settings, user_store.list_users)
    if as_json:
        console.print_json(json.dumps([user_dict(u) for u in found]))
        return
    table = Table(title=f"Staff users ({settings.brand.timezone})")
    for column in ("e-mail", "name", "role", "2FA", "state", "last sign-in"):
        table.add_column(column)
    for user in found:
        table.add_row(
            user.email, outside(user.display_name), user.role,
            "[green]on[/]" if user.totp_enrolled_at else "[yellow]off[/]",
            _state(user),
            _local(settings, user.last_login_at),
        )  # fmt: skip
    console.print(table if found else "[dim]No staff user: `broadcaster init` creates the first admin.[/]")


@users_app.command("disable")
@user_errors
def disable(ctx: typer.Context, email: Email) -> None:
    """Stop a user: no more sign-in, their sessions end, their tokens stop working."""
    user = _with_sessions(state(ctx).settings, lambda s: user_store.set_disabled(s, email, True))
    console.print(f"{user.email} is disabled.")


@users_app.command("enable")
@user_errors
def enable(ctx: typer.Context, email: Email) -> None:
    user = _with_sessions(state(ctx).settings, lambda s: user_store.set_disabled(s, email, False))
    console.print(f"{user.email} may sign in again.")


@users_app.command("set-role")
@user_errors
def set_role(ctx: typer.Context, email: Email, role: Annotated[str, typer.Argument(help=_ROLE_HELP)]) -> None:
    """Change a user's role; their tokens never do more than the new role allows."""
    user = _with_sessions(state(ctx).settings, lambda s: user_store.set_role(s, email, role))
    console.print(f"{user.email} is now {user.role}.")


@users_app.command("reset-2fa")
@user_errors
def reset_2fa(ctx: typer.Context, email: Email) -> None:
    """Forget a user's authenticator and recovery codes (a lost phone); they enrol again at sign-in."""
    user = _with_sessions(state(ctx).settings, lambda s: user_store.reset_second_factor(s, email))
    console.print(
        f"{user.email}: second factor removed, sessions ended; they set it up again at next sign-in."
    )


@users_app.command("reset-password")
@user_errors
def reset_password(ctx: typer.Context, email: Email) -> None:
    """Clear a user's password and end their sessions; prints a new set-up link (valid 24 h)."""
    settings = state(ctx).settings
    reset = _with_sessions(settings, lambda s: user_store.reset_password(s, email))
    console.print(f"{reset.user.email}: password cleared. Set-up link, valid 24 h, works once:")
    console.print(setup_url(settings, reset.setup_secret), soft_wrap=True, highlight=False)


@tokens_app.command("create")
@user_errors
def create_token(
    ctx: typer.Context,
    email: Annotated[str, typer.Argument(help="The owner's e-mail.")],
    name: Annotated[str, typer.Option("--name", help="What will use it ('prometheus', 'deploy').")],
    role: Annotated[str | None, typer.Option("--role", help="Its scope, at most the owner's role.")] = None,
    expires: Annotated[str | None, typer.Option("--expires", help="30d, 12h or an ISO date-time.")] = None,
    as_json: AsJson = False,
) -> None:
    """Create an API token; it is shown this once (only its hash is kept)."""
    settings = state(ctx).settings
    expires_at = None
    if expires:
        when = _span_or_time("--expires", expires, settings)
        expires_at = utcnow() + when if isinstance(when, timedelta) else when
    issued = _with_sessions(settings, lambda s: token_store.create_token(s, email, name, role, expires_at))
    if as_json:
        console.print_json(json.dumps(token_dict(issued.token, issued.owner) | {"token": issued.plaintext}))
        return
    console.print(f"Token #{issued.token.id} {issued.token.name!r} for {issued.owner} ({issued.token.role}).")
    console.print("Copy it now, it is not shown again:")
    console.print(issued.plaintext, soft_wrap=True, highlight=False)


@tokens_app.command("list")
@user_errors
def list_tokens(
    ctx: typer.Context,
    owner: Annotated[str | None, typer.Option("--owner", help="Only this user's tokens.")] = None,
    as_json: AsJson = False,
) -> None:
    settings = state(ctx).settings
    found = _with_sessions(settings, lambda s: token_store.list_tokens(s, owner))
    if as_json:
        console.print_json(json.dumps([token_dict(t, o) for t, o in found]))
        return
    table = Table(title=f"API tokens ({settings.brand.timezone})")
    for column in ("#", "name", "owner", "scope", "created", "expires", "last used", "state"):
        table.add_column(column)
    now = utcnow()
    for token, owner_email in found:
        if token.revoked_at:
            status = "[red]revoked[/]"
        elif token.expires_at and token.expires_at <= now:
            status = "[yellow]expired[/]"
        else:
            status = "[green]live[/]"
        table.add_row(
            str(token.id), outside(token.name), owner_email, token.role, _local(settings, token.created_at),
            _local(settings, token.expires_at), _local(settings, token.last_used_at), status,
        )  # fmt: skip
    console.print(table if found else "[dim]No API token.[/]")


@tokens_app.command("revoke")
@user_errors
def revoke(ctx: typer.Context, token_id: Annotated[int, typer.Argument(help="The token's number.")]) -> None:
    token = _with_sessions(state(ctx).settings, lambda s: token_store.revoke_token(s, token_id))
    console.print(f"Token #{token.id} {token.name!r} is revoked.")


def register_audit(root: typer.Typer) -> None:
    @root.command("audit")
    @user_errors
    def audit(
        ctx: typer.Context,
        since: Annotated[str | None, typer.Option("--since", help="2h, 7d or an ISO date-time.")] = None,
        actor: Annotated[str | None, typer.Option("--actor", help="Part of who: an e-mail, cli:…")] = None,
        object_: Annotated[
            str | None, typer.Option("--object", help="Part of what: incident:12, user:…")
        ] = None,
        limit: Annotated[int, typer.Option("--limit", min=1, max=10_000)] = 200,
        as_json: AsJson = False,
    ) -> None:
        """Who changed what, and when: the newest first."""
        settings = state(ctx).settings
        start = None
        if since:
            when = _span_or_time("--since", since, settings)
            start = utcnow() - when if isinstance(when, timedelta) else when
        events = _with_sessions(
            settings, lambda s: find_events(s, since=start, actor=actor, object_=object_, limit=limit)
        )
        if as_json:
            console.print_json(json.dumps([audit_dict(e) for e in events]))
            return
        table = Table(title=f"Audit log ({settings.brand.timezone})")
        for column in ("when", "who", "from", "what", "on", "summary"):
            table.add_column(column)
        for event in events:
            table.add_row(
                _local(settings, event.at), outside(event.actor), event.address, event.action,
                outside(event.object), outside(event.summary),
            )  # fmt: skip
        console.print(table if events else "[dim]Nothing recorded.[/]")
