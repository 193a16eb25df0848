"""The audit log: every state change writes one append-only row in the transaction that makes it.

Who acts is set once where a request or a command comes in (`acting_as`): the staff API for a user or
a token, the CLI for its unix user, the scheduler and the bot for themselves. A row never holds a
password, a token or a secret: summaries are written by us, from ids and names.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from broadcaster.control_characters import without_controls
from broadcaster.db import SessionFactory
from broadcaster.models import AuditEvent

__all__ = [
    "BOT",
    "Actor",
    "act_as_from_now",
    "acting_as",
    "cli_actor",
    "current_actor",
    "find_events",
    "one_line",
    "record",
]


@dataclass(frozen=True, slots=True)
class Actor:
    """Who is acting (`user:ana@shop.fr`, `token:deploy (ana@shop.fr)`, `cli:root`, `scheduler`, `bot`)
    and from which client address, when there is one."""

    label: str
    address: str = ""


#: The status bot and the spike detector, which answer customers and draft incidents on their own.
BOT = Actor("bot")


def one_line(text: str) -> str:
    """`text` on one line without control characters: a summary can never forge a second row."""
    return " ".join(without_controls(text).split())


def cli_actor(claimed: str | None = None) -> Actor:
    """The person at the terminal: `--as`/`BROADCASTER_USER` if given, always with the unix user."""
    unix = f"cli:{_unix_user()}"
    claimed = (claimed or os.environ.get("BROADCASTER_USER", "")).strip()
    return Actor(f"{one_line(claimed)[:80]} ({unix})" if claimed else unix)


def _unix_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a bare container)
        return str(os.getuid())


_acting: ContextVar[Actor | None] = ContextVar("acting", default=None)


def current_actor() -> Actor:
    """Who acts in this task; a process that said nothing is its unix user at a terminal."""
    return _acting.get() or cli_actor()


def act_as_from_now(actor: Actor) -> None:
    """Who acts for the rest of this context (a CLI command: the whole process)."""
    _acting.set(actor)


@contextmanager
def acting_as(actor: Actor) -> Iterator[Actor]:
    token = _acting.set(actor)
    try:
        yield actor
    finally:
        _acting.reset(token)


def record(session: AsyncSession, action: str, object_: str, summary: str = "") -> AuditEvent:
    """Adds the row to `session`: it is written, or not, with the change it describes."""
    actor = current_actor()
    event = AuditEvent(
        actor=actor.label[:200],
        address=actor.address[:64],
        action=action,
        object=object_[:120],
        summary=one_line(summary)[:300],
    )
    session.add(event)
    return event


async def find_events(
    sessions: SessionFactory,
    *,
    since: datetime | None = None,
    actor: str | None = None,
    object_: str | None = None,
    limit: int = 200,
) -> Sequence[AuditEvent]:
    """The newest events first; `actor` and `object_` match a part of the label (`ana@`, `incident:12`)."""
    query = select(AuditEvent).order_by(col(AuditEvent.id).desc()).limit(limit)
    if since is not None:
        query = query.where(col(AuditEvent.at) >= since)
    if actor:
        query = query.where(col(AuditEvent.actor).contains(actor, autoescape=True))
    if object_:
        query = query.where(col(AuditEvent.object).contains(object_, autoescape=True))
    async with sessions() as session:
        return (await session.exec(query)).all()
