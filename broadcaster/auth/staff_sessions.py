"""Signed-in browser sessions, kept server side: an idle timeout, an absolute lifetime, log out everywhere.

The cookie carries a random id; the table keeps only its SHA-256, so a copy of the database signs
nobody in. Each session has its own CSRF token, which every state-changing form and call must echo.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import select

from broadcaster.auth.hashing import digest, new_secret
from broadcaster.auth.users import end_sessions
from broadcaster.db import SessionFactory
from broadcaster.models import StaffSession, StaffUser

__all__ = [
    "SessionRules",
    "SignedIn",
    "end_all_sessions",
    "end_session",
    "load_session",
    "mark_second_factor_done",
    "start_session",
]

#: last_seen_at is written at most this often: a page full of live requests does not write each time.
_SEEN_WRITE_EVERY = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class SessionRules:
    idle: timedelta
    lifetime: timedelta

    @property
    def lifetime_seconds(self) -> int:
        return int(self.lifetime.total_seconds())


@dataclass(frozen=True, slots=True)
class SignedIn:
    """A live session and its user (a user whose second factor is still to set up has it undone)."""

    session: StaffSession
    user: StaffUser

    def __repr__(self) -> str:
        return f"SignedIn(user={self.user.email!r}, session={self.session.id})"


async def start_session(
    sessions: SessionFactory, user: StaffUser, address: str, second_factor_done: bool, now: datetime
) -> str:
    """A new session for `user`; returns the cookie value (never stored)."""
    cookie = new_secret()
    assert user.id is not None
    async with sessions() as session, session.begin():
        session.add(
            StaffSession(
                user_id=user.id,
                id_hash=digest(cookie),
                csrf_token=new_secret(24),
                second_factor_done=second_factor_done,
                address=address[:64],
                created_at=now,
                last_seen_at=now,
            )
        )
    return cookie


async def load_session(
    sessions: SessionFactory, cookie: str, rules: SessionRules, now: datetime
) -> SignedIn | None:
    """The live session of this cookie, or None (unknown, ended, idle too long, too old, user disabled)."""
    if not cookie or len(cookie) > 128:
        return None
    async with sessions() as session:
        found = (
            await session.exec(select(StaffSession).where(StaffSession.id_hash == digest(cookie)))
        ).first()
        if found is None or found.ended_at is not None:
            return None
        if now - found.last_seen_at > rules.idle or now - found.created_at > rules.lifetime:
            return None
        user = await session.get(StaffUser, found.user_id)
        if user is None or user.disabled:
            return None
        if now - found.last_seen_at >= _SEEN_WRITE_EVERY:
            found.last_seen_at = now
            session.add(found)
            await session.commit()
        return SignedIn(found, user)


async def end_session(sessions: SessionFactory, session_id: int, now: datetime) -> None:
    async with sessions() as session, session.begin():
        found = await session.get(StaffSession, session_id)
        if found is not None and found.ended_at is None:
            found.ended_at = now


async def end_all_sessions(sessions: SessionFactory, user_id: int, now: datetime) -> int:
    async with sessions() as session, session.begin():
        return await end_sessions(session, user_id, now)


async def mark_second_factor_done(sessions: SessionFactory, session_id: int) -> None:
    """The session's user has just set up their second factor: the session may now do their role's work."""
    async with sessions() as session, session.begin():
        found = await session.get(StaffSession, session_id)
        if found is not None:
            found.second_factor_done = True
