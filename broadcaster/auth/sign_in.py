"""Signing in: e-mail, password and the second factor, throttled per account and per client address.

Every refusal says the same thing whether the account exists or not, and a lock-out counts the
e-mail typed, known or not: an attacker learns nothing about who has an account.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from broadcaster.auth.audit import Actor, acting_as, current_actor, record
from broadcaster.auth.hashing import check_password, digest
from broadcaster.auth.second_factor import check_second_factor
from broadcaster.db import SessionFactory
from broadcaster.errors import BroadcasterError
from broadcaster.models import LoginFailure, StaffUser

__all__ = ["REFUSED", "SignInRefused", "SignInResult", "Throttle", "sign_in"]

REFUSED = "wrong e-mail, password or code"
LOCKED = "too many failed attempts: try again in {minutes} minutes"


class SignInRefused(BroadcasterError):
    """The one message a refused sign-in shows (wrong credentials, or locked for `minutes`)."""

    def __init__(self, minutes: int | None = None) -> None:
        self.minutes = minutes
        super().__init__(REFUSED if minutes is None else LOCKED.format(minutes=minutes))

    def said_with(self, gettext: Callable[[str], str]) -> str:
        """The message in a reader's language (`gettext` of their catalog)."""
        return gettext(REFUSED) if self.minutes is None else gettext(LOCKED).format(minutes=self.minutes)


@dataclass(frozen=True, slots=True)
class Throttle:
    per_account: int  # failures of one e-mail within `window` before it is locked
    per_address: int  # failures from one client address within `window`
    window: timedelta


@dataclass(frozen=True, slots=True)
class SignInResult:
    user: StaffUser
    second_factor_done: bool  # False: the user has none yet and must set it up before anything else


def account_key(email: str) -> str:
    return digest(email.strip().lower())


async def _locked(session: AsyncSession, key: str, address: str, throttle: Throttle, now: datetime) -> bool:
    since = now - throttle.window

    async def failures(where: ColumnElement[bool]) -> int:
        query = select(func.count()).select_from(LoginFailure).where(col(LoginFailure.at) >= since, where)
        return int((await session.exec(query)).one())

    return (
        await failures(col(LoginFailure.account_key) == key) >= throttle.per_account
        or await failures(col(LoginFailure.address) == address) >= throttle.per_address
    )


async def sign_in(
    sessions: SessionFactory,
    email: str,
    password: str,
    code: str,
    *,
    address: str,
    throttle: Throttle,
    require_2fa: frozenset[str],
    now: datetime,
) -> SignInResult:
    """The user, when all is right; `code` may be a TOTP code or a recovery code. Raises SignInRefused."""
    key, address = account_key(email), address[:64]
    refusal = SignInRefused()
    async with sessions() as session, session.begin():  # the refusal is raised once its rows are written
        if await _locked(session, key, address, throttle, now):
            minutes = int(throttle.window.total_seconds() // 60)
            record(session, "login.locked", "login", "refused while locked")
            refusal = SignInRefused(minutes)
            user = None
        else:
            user = await _signed_in(session, email, password, code, key, address, require_2fa, now)
    if user is None:
        raise refusal
    return user


async def _signed_in(
    session: AsyncSession,
    email: str,
    password: str,
    code: str,
    key: str,
    address: str,
    require_2fa: frozenset[str],
    now: datetime,
) -> SignInResult | None:
    """The user when every factor is right (their sign-in recorded), else None (the failure recorded)."""
    user = (await session.exec(select(StaffUser).where(StaffUser.email == email.strip().lower()))).first()
    passed = check_password(user.password_hash if user else None, password)
    factor: str | None = "none"
    if passed and user is not None and user.totp_enrolled_at is not None:
        factor = await check_second_factor(session, user, code, now)
    if user is None or user.disabled or not passed or factor is None:
        session.add(LoginFailure(account_key=key, address=address, at=now))
        known = f"user:{user.email}" if user is not None else "login"
        record(session, "login.failed", known, "" if user is not None else "unknown e-mail")
        return None
    user.last_login_at = now
    with acting_as(Actor(f"user:{user.email}", current_actor().address)):
        record(session, "login", f"user:{user.email}", f"signed in ({factor})")
    return SignInResult(user, user.totp_enrolled_at is not None or user.role not in require_2fa)
