"""`/api/v1/me`, `/api/v1/audit`, and the admin's `/api/v1/users` and `/api/v1/tokens`: the same
functions as `broadcaster users|tokens|audit`."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from broadcaster.auth import tokens as token_store
from broadcaster.auth import users as user_store
from broadcaster.auth.audit import find_events
from broadcaster.auth.roles import ROLES, Permission
from broadcaster.config import Settings
from broadcaster.db import SessionFactory
from broadcaster.errors import InvalidInput, NotFound
from broadcaster.models import ApiToken, AuditEvent, StaffUser
from broadcaster.web.ids import RowId
from broadcaster.web.staff_gate import StaffGate, needs, principal_of

__all__ = ["audit_dict", "staff_api_router", "token_dict", "user_dict"]

JsonObject = dict[str, object]
Role = Literal["admin", "editor", "agent", "viewer"]
assert set(Role.__args__) == set(ROLES)  # type: ignore[attr-defined]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NewUserBody(_Body):
    email: str = Field(max_length=254)
    display_name: str = Field(default="", max_length=120)
    role: Role
    locale: Literal["fr", "en"] = "fr"


class UserChangeBody(_Body):
    role: Role | None = None
    disabled: bool | None = None


class NewTokenBody(_Body):
    email: str = Field(max_length=254)  # the owner
    name: str = Field(min_length=1, max_length=80)
    role: Role | None = None  # default: the owner's role
    expires_at: AwareDatetime | None = None


def _when(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def user_dict(user: StaffUser) -> JsonObject:
    return {
        "id": user.id, "email": user.email, "display_name": user.display_name, "locale": user.locale,
        "role": user.role, "disabled": user.disabled, "two_factor": user.totp_enrolled_at is not None,
        "created_at": _when(user.created_at), "last_login_at": _when(user.last_login_at),
    }  # fmt: skip


def token_dict(token: ApiToken, owner: str) -> JsonObject:
    return {
        "id": token.id, "name": token.name, "owner": owner, "role": token.role,
        "created_at": _when(token.created_at), "expires_at": _when(token.expires_at),
        "last_used_at": _when(token.last_used_at), "revoked_at": _when(token.revoked_at),
    }  # fmt: skip


def audit_dict(event: AuditEvent) -> JsonObject:
    return {
        "id": event.id, "at": _when(event.at), "actor": event.actor, "address": event.address,
        "action": event.action, "object": event.object, "summary": event.summary,
    }  # fmt: skip


def _refused(exc: Exception) -> HTTPException:
    return HTTPException(status_code=404 if isinstance(exc, NotFound) else 422, detail=str(exc))


def staff_api_router(settings: Settings, sessions: SessionFactory, gate: StaffGate) -> APIRouter:
    router = gate.router("/api/v1")
    admin = needs(Permission.USERS_MANAGE)

    @router.get("/me", **needs(Permission.INCIDENTS_READ))
    async def me(request: Request) -> JsonObject:
        """Who the caller is and what they may do."""
        principal = principal_of(request)
        return user_dict(principal.user) | {
            "acting_as": principal.actor.label,
            "permissions": sorted(p.value for p in principal.permissions),
        }

    @router.get("/audit", **needs(Permission.AUDIT_READ))
    async def audit(
        since: AwareDatetime | None = None,
        actor: Annotated[str | None, Query(max_length=200)] = None,
        object: Annotated[str | None, Query(max_length=120)] = None,  # noqa: A002 (the query's name)
        limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    ) -> list[JsonObject]:
        """The audit log, newest first: every change, who made it, when, from where."""
        events = await find_events(sessions, since=since, actor=actor, object_=object, limit=limit)
        return [audit_dict(e) for e in events]

    @router.get("/users", **admin)
    async def list_users() -> list[JsonObject]:
        return [user_dict(u) for u in await user_store.list_users(sessions)]

    @router.post("/users", status_code=201, **admin)
    async def add_user(body: NewUserBody) -> JsonObject:
        """A new user; `setup_url` (shown once) lets them choose their password within a day."""
        try:
            added = await user_store.add_user(sessions, body.email, body.display_name, body.role, body.locale)
        except (InvalidInput, NotFound) as exc:
            raise _refused(exc) from None
        return user_dict(added.user) | {"setup_url": f"{gate.base_url}/setup/{added.setup_secret}"}

    @router.patch("/users/{email}", **admin)
    async def change_user(email: str, body: UserChangeBody) -> JsonObject:
        """Change a user's role, or disable (their sessions end, their tokens stop) and enable them."""
        try:
            user = await user_store.find_user(sessions, email)
            if body.role is not None:
                user = await user_store.set_role(sessions, email, body.role)
            if body.disabled is not None:
                user = await user_store.set_disabled(sessions, email, body.disabled)
        except (InvalidInput, NotFound) as exc:
            raise _refused(exc) from None
        return user_dict(user)

    @router.post("/users/{email}/reset-password", **admin)
    async def reset_password(email: str) -> JsonObject:
        """Clear the password and end the sessions; `setup_url` (shown once) lets them choose a new one."""
        try:
            reset = await user_store.reset_password(sessions, email)
        except (InvalidInput, NotFound) as exc:
            raise _refused(exc) from None
        return user_dict(reset.user) | {"setup_url": f"{gate.base_url}/setup/{reset.setup_secret}"}

    @router.post("/users/{email}/reset-2fa", **admin)
    async def reset_2fa(email: str) -> JsonObject:
        """Forget the authenticator and recovery codes (a lost phone); they enrol again at sign-in."""
        try:
            return user_dict(await user_store.reset_second_factor(sessions, email))
        except (InvalidInput, NotFound) as exc:
            raise _refused(exc) from None

    @router.get("/tokens", **admin)
    async def list_tokens(owner: Annotated[str | None, Query(max_length=254)] = None) -> list[JsonObject]:
        try:
            return [token_dict(t, o) for t, o in await token_store.list_tokens(sessions, owner)]
        except InvalidInput as exc:
            raise _refused(exc) from None

    @router.post("/tokens", status_code=201, **admin)
    async def create_token(body: NewTokenBody) -> JsonObject:
        """A token for a user, scoped to at most their role; `token` is shown this once."""
        try:
            issued = await token_store.create_token(
                sessions, body.email, body.name, body.role, body.expires_at
            )
        except (InvalidInput, NotFound) as exc:
            raise _refused(exc) from None
        return token_dict(issued.token, issued.owner) | {"token": issued.plaintext}

    @router.delete("/tokens/{token_id}", **admin)
    async def revoke_token(token_id: RowId) -> JsonObject:
        try:
            token = await token_store.revoke_token(sessions, token_id)
        except NotFound as exc:
            raise _refused(exc) from None
        return {"id": token.id, "revoked_at": _when(token.revoked_at)}

    return router
