"""Staff users: add, list, disable, change role, reset a password or a second factor; set-up links."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import update
from sqlmodel import col, delete, select
from sqlmodel.ext.asyncio.session import AsyncSession

from broadcaster.auth.audit import one_line, record
from broadcaster.auth.hashing import digest, hash_password, new_secret
from broadcaster.auth.roles import check_role
from broadcaster.db import SessionFactory
from broadcaster.errors import InvalidInput, NotFound
from broadcaster.models import RecoveryCode, SetupLink, StaffSession, StaffUser, utcnow

__all__ = [
    "LOCALES",
    "SETUP_LINK_HOURS",
    "NewUser",
    "add_user",
    "check_email",
    "end_sessions",
    "ensure_first_admin",
    "find_user",
    "list_users",
    "reset_password",
    "reset_second_factor",
    "set_disabled",
    "set_role",
    "use_setup_link",
]

LOCALES = ("fr", "en")
SETUP_LINK_HOURS = 24


@dataclass(frozen=True, slots=True)
class NewUser:
    """A user just added (or reset) and the one-time secret of their set-up link (`/setup/<secret>`)."""

    user: StaffUser
    setup_secret: str


def check_email(email: str) -> str:
    try:
        # Staff may sit on an internal domain (ops.shop.internal): special-use names are accepted.
        found = validate_email(email.strip(), check_deliverability=False, globally_deliverable=False)
        return found.normalized.lower()
    except EmailNotValidError as exc:
        raise InvalidInput(f"e-mail {one_line(email)[:80]!r}: {exc}") from None


def _check_locale(locale: str) -> str:
    if locale not in LOCALES:
        raise InvalidInput(f"locale {one_line(locale)[:16]!r}: expected one of {', '.join(LOCALES)}")
    return locale


def _role(role: str) -> str:
    try:
        return check_role(role)
    except ValueError as exc:
        raise InvalidInput(f"role: {exc}") from None


async def _by_email(session: AsyncSession, email: str) -> StaffUser:
    user = (await session.exec(select(StaffUser).where(StaffUser.email == check_email(email)))).first()
    if user is None:
        raise NotFound(f"no staff user {one_line(email)[:80]!r}: `broadcaster users list` shows them")
    return user


async def find_user(sessions: SessionFactory, email: str) -> StaffUser:
    async with sessions() as session:
        return await _by_email(session, email)


def _setup_link(session: AsyncSession, user_id: int, now: datetime) -> str:
    secret = new_secret()
    session.add(
        SetupLink(
            user_id=user_id,
            token_hash=digest(secret),
            created_at=now,
            expires_at=now + timedelta(hours=SETUP_LINK_HOURS),
        )
    )
    return secret


async def add_user(
    sessions: SessionFactory, email: str, display_name: str, role: str, locale: str = "fr"
) -> NewUser:
    """A new user without a password: they choose it by their set-up link (valid a day)."""
    email, role, locale = check_email(email), _role(role), _check_locale(locale)
    name = one_line(display_name)[:120] or email.split("@")[0]
    async with sessions() as session, session.begin():
        if (await session.exec(select(StaffUser.id).where(StaffUser.email == email))).first() is not None:
            raise InvalidInput(f"e-mail {email}: there is already a staff user with it")
        user = StaffUser(email=email, display_name=name, role=role, locale=locale)
        session.add(user)
        await session.flush()
        assert user.id is not None
        secret = _setup_link(session, user.id, utcnow())
        record(session, "user.add", f"user:{email}", f"added {email} as {role}")
    return NewUser(user, secret)


async def ensure_first_admin(sessions: SessionFactory, email: str) -> NewUser | None:
    """The first admin, when there is no staff user at all (`broadcaster init`)."""
    async with sessions() as session:
        if (await session.exec(select(StaffUser.id).limit(1))).first() is not None:
            return None
    return await add_user(sessions, email, "Admin", "admin", "en")


async def list_users(sessions: SessionFactory) -> Sequence[StaffUser]:
    async with sessions() as session:
        return (await session.exec(select(StaffUser).order_by(col(StaffUser.email)))).all()


async def end_sessions(session: AsyncSession, user_id: int, now: datetime) -> int:
    """Ends every session of the user (log out everywhere); returns how many were open."""
    result = await session.exec(
        update(StaffSession)
        .where(col(StaffSession.user_id) == user_id, col(StaffSession.ended_at).is_(None))
        .values(ended_at=now)
    )
    return int(result.rowcount or 0)


async def set_disabled(sessions: SessionFactory, email: str, disabled: bool) -> StaffUser:
    """A disabled user cannot sign in, their sessions end and their tokens stop working."""
    async with sessions() as session, session.begin():
        user = await _by_email(session, email)
        user.disabled = disabled
        assert user.id is not None
        if disabled:
            await end_sessions(session, user.id, utcnow())
        record(session, "user.disable" if disabled else "user.enable", f"user:{user.email}")
    return user


async def set_role(sessions: SessionFactory, email: str, role: str) -> StaffUser:
    role = _role(role)
    async with sessions() as session, session.begin():
        user = await _by_email(session, email)
        before, user.role = user.role, role
        record(session, "user.set_role", f"user:{user.email}", f"role {before} → {role}")
    return user


async def reset_password(sessions: SessionFactory, email: str) -> NewUser:
    """Clears the password and ends the sessions; the user sets a new one by a fresh set-up link."""
    async with sessions() as session, session.begin():
        user = await _by_email(session, email)
        assert user.id is not None
        user.password_hash = None
        await end_sessions(session, user.id, utcnow())
        secret = _setup_link(session, user.id, utcnow())
        record(session, "user.reset_password", f"user:{user.email}", "password cleared, set-up link issued")
    return NewUser(user, secret)


async def reset_second_factor(sessions: SessionFactory, email: str) -> StaffUser:
    """Forgets the authenticator and the recovery codes; the user enrols again at next sign-in."""
    async with sessions() as session, session.begin():
        user = await _by_email(session, email)
        assert user.id is not None
        user.totp_secret, user.totp_enrolled_at, user.totp_last_step = None, None, 0
        await session.exec(delete(RecoveryCode).where(col(RecoveryCode.user_id) == user.id))
        await end_sessions(session, user.id, utcnow())
        record(session, "user.reset_2fa", f"user:{user.email}", "second factor removed")
    return user


async def use_setup_link(sessions: SessionFactory, secret: str, password: str, now: datetime) -> StaffUser:
    """Sets the password of the link's user; a link works once, for a day."""
    async with sessions() as session, session.begin():
        link = (await session.exec(select(SetupLink).where(SetupLink.token_hash == digest(secret)))).first()
        if link is None or link.used_at is not None or link.expires_at <= now:
            raise NotFound("this set-up link is unknown, used or expired: ask an admin for a new one")
        user = await session.get(StaffUser, link.user_id)
        if user is None or user.disabled:
            raise NotFound("this set-up link is unknown, used or expired: ask an admin for a new one")
        try:
            user.password_hash = hash_password(password)
        except ValueError as exc:
            raise InvalidInput(f"password: {exc}") from None
        link.used_at = now
        record(session, "user.set_password", f"user:{user.email}", "password set by set-up link")
    return user
