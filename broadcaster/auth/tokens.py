"""Per-user API tokens: `bc_<id>_<secret>`, shown once, stored as the secret's SHA-256.

A token is scoped to a role no wider than its owner's; at each use it may do what both its scope and
its owner's current role allow, and nothing once the owner is disabled or it is revoked or expired.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import col, select

from broadcaster.auth.audit import one_line, record
from broadcaster.auth.hashing import digest, new_secret, same_digest
from broadcaster.auth.roles import Permission, check_role, permissions_of, within
from broadcaster.auth.users import check_email
from broadcaster.db import SessionFactory
from broadcaster.errors import InvalidInput, NotFound
from broadcaster.models import ApiToken, StaffUser, utcnow

__all__ = ["IssuedToken", "TokenHolder", "authenticate_token", "create_token", "list_tokens", "revoke_token"]

PREFIX = "bc_"
#: last_used_at is written at most this often per token: a busy script does not write on every call.
_USE_WRITE_EVERY = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: ApiToken
    owner: str  # the owner's e-mail
    plaintext: str  # shown once, never stored

    def __repr__(self) -> str:
        return f"IssuedToken(id={self.token.id}, name={self.token.name!r}, owner={self.owner!r})"


@dataclass(frozen=True, slots=True)
class TokenHolder:
    """Who a presented token speaks for, and what it may do now."""

    user: StaffUser
    token: ApiToken
    permissions: frozenset[Permission]


async def create_token(
    sessions: SessionFactory,
    email: str,
    name: str,
    role: str | None = None,
    expires_at: datetime | None = None,
) -> IssuedToken:
    name = one_line(name)[:80]
    if not name:
        raise InvalidInput("name: a token needs a name (what uses it: 'prometheus', 'deploy script')")
    if expires_at is not None and expires_at <= utcnow():
        raise InvalidInput("expires: the expiry is in the past")
    async with sessions() as session, session.begin():
        user = (await session.exec(select(StaffUser).where(StaffUser.email == check_email(email)))).first()
        if user is None:
            raise NotFound(f"no staff user {email!r}: `broadcaster users list` shows them")
        scope = user.role if role is None else role
        try:
            check_role(scope)
        except ValueError as exc:
            raise InvalidInput(f"role: {exc}") from None
        if not within(scope, user.role):
            raise InvalidInput(f"role: {scope} is wider than {user.email}'s role ({user.role})")
        secret = new_secret()
        assert user.id is not None
        token = ApiToken(
            user_id=user.id, name=name, role=scope, secret_hash=digest(secret), expires_at=expires_at
        )
        session.add(token)
        await session.flush()
        record(session, "token.create", f"token:{token.id}", f"{name!r} for {user.email} as {scope}")
    return IssuedToken(token, user.email, f"{PREFIX}{token.id}_{secret}")


async def list_tokens(sessions: SessionFactory, email: str | None = None) -> Sequence[tuple[ApiToken, str]]:
    """Every token with its owner's e-mail (of one owner with `email`), the newest first."""
    query = (
        select(ApiToken, StaffUser.email)
        .join(StaffUser, col(StaffUser.id) == col(ApiToken.user_id))
        .order_by(col(ApiToken.id).desc())
    )
    if email:
        query = query.where(StaffUser.email == check_email(email))
    async with sessions() as session:
        return [(token, owner) for token, owner in (await session.exec(query)).all()]


async def revoke_token(sessions: SessionFactory, token_id: int) -> ApiToken:
    async with sessions() as session, session.begin():
        token = await session.get(ApiToken, token_id)
        if token is None:
            raise NotFound(f"no token {token_id}: `broadcaster tokens list` shows them")
        if token.revoked_at is None:
            token.revoked_at = utcnow()
            record(session, "token.revoke", f"token:{token_id}", f"{token.name!r} revoked")
    return token


def _parse(presented: str) -> tuple[int, str] | None:
    if not presented.startswith(PREFIX):
        return None
    number, _, secret = presented[len(PREFIX) :].partition("_")
    if not number.isdigit() or len(number) > 18 or not secret:
        return None
    return int(number), secret


async def authenticate_token(sessions: SessionFactory, presented: str, now: datetime) -> TokenHolder | None:
    """The holder of a live token, or None (unknown, wrong, revoked, expired, owner disabled)."""
    parsed = _parse(presented.strip())
    if parsed is None:
        return None
    token_id, secret = parsed
    async with sessions() as session:
        token = await session.get(ApiToken, token_id)
        if token is None or not same_digest(token.secret_hash, secret):
            return None
        if token.revoked_at is not None or (token.expires_at is not None and token.expires_at <= now):
            return None
        user = await session.get(StaffUser, token.user_id)
        if user is None or user.disabled:
            return None
        if token.last_used_at is None or now - token.last_used_at >= _USE_WRITE_EVERY:
            token.last_used_at = now
            session.add(token)
            await session.commit()
        return TokenHolder(user, token, permissions_of(token.role) & permissions_of(user.role))
