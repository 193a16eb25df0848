"""Who is calling a staff route, and may they: a user's API token, or a signed-in session with its CSRF
token on every change. Every staff route names its permission (`needs`); a route without one fails
when the app is built, and the permission is shown in the OpenAPI document."""

from __future__ import annotations

import hmac
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response, Security
from fastapi.routing import APIRoute
from fastapi.security import HTTPBearer

from broadcaster.auth.audit import Actor, acting_as
from broadcaster.auth.roles import Permission, permissions_of
from broadcaster.auth.sign_in import Throttle
from broadcaster.auth.staff_sessions import SessionRules, SignedIn, load_session
from broadcaster.auth.tokens import authenticate_token
from broadcaster.config import Settings
from broadcaster.db import SessionFactory
from broadcaster.models import StaffUser, utcnow

__all__ = [
    "COOKIE",
    "CSRF_FIELD",
    "CSRF_HEADER",
    "PERMISSION_KEY",
    "Principal",
    "StaffGate",
    "client_address",
    "needs",
    "principal_of",
]

COOKIE = "broadcaster_session"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
PERMISSION_KEY = "x-permission"
_SAFE = frozenset({"GET", "HEAD", "OPTIONS"})

#: Declares the bearer scheme in /openapi.json; the gate does the checking.
BEARER = HTTPBearer(auto_error=False, scheme_name="staffToken", description="a user's API token (bc_…)")


def needs(permission: Permission) -> dict[str, Any]:
    """The route keyword that names its permission: `@router.get("", **needs(Permission.INBOX_READ))`."""
    return {"openapi_extra": {PERMISSION_KEY: permission.value}}


def client_address(request: Request) -> str:
    return request.client.host if request.client else ""


@dataclass(frozen=True, slots=True)
class Principal:
    """Who called: the user, through which token or session, and what they may do now."""

    user: StaffUser
    actor: Actor
    permissions: frozenset[Permission]
    signed_in: SignedIn | None = None  # None: an API token


class StaffGate:
    def __init__(
        self, settings: Settings, sessions: SessionFactory, clock: Callable[[], datetime] = utcnow
    ) -> None:
        auth = settings.auth
        self.sessions, self.clock = sessions, clock
        self.rules = SessionRules(
            idle=timedelta(minutes=auth.session_idle_minutes),
            lifetime=timedelta(hours=auth.session_lifetime_hours),
        )
        self.throttle = Throttle(
            auth.max_failures_per_account,
            auth.max_failures_per_address,
            timedelta(minutes=auth.lockout_minutes),
        )
        self.require_2fa = frozenset(auth.require_2fa)
        self.secure_cookie = settings.server.public_base_url.startswith("https://")
        self.base_url = settings.server.public_base_url.rstrip("/")

    async def signed_in(self, request: Request) -> SignedIn | None:
        return await load_session(self.sessions, request.cookies.get(COOKIE, ""), self.rules, self.clock())

    async def principal(self, request: Request) -> Principal:
        """The caller, or 401 (nobody we know) / 403 (a change without the session's CSRF token)."""
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        address = client_address(request)
        if scheme.lower() == "bearer" and given.strip():
            holder = await authenticate_token(self.sessions, given, self.clock())
            if holder is None:
                raise _unauthorized("unknown, revoked or expired API token")
            label = f"token:{holder.token.name} ({holder.user.email})"
            return Principal(holder.user, Actor(label, address), holder.permissions)
        signed_in = await self.signed_in(request)
        if signed_in is None:
            raise _unauthorized("sign in, or send a user's API token as a bearer token")
        if request.method not in _SAFE and not await _echoes_csrf(request, signed_in.session.csrf_token):
            raise HTTPException(status_code=403, detail=f"missing or wrong CSRF token ({CSRF_HEADER} header)")
        granted = permissions_of(signed_in.user.role) if signed_in.session.second_factor_done else frozenset()
        return Principal(signed_in.user, Actor(f"user:{signed_in.user.email}", address), granted, signed_in)

    def route_class(self) -> type[APIRoute]:
        gate = self

        class StaffRoute(APIRoute):
            """Checks the caller before anything else, even reading the body; then acts as them."""

            def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
                extra = kwargs.get("openapi_extra") or {}
                if PERMISSION_KEY not in extra:
                    raise TypeError(f"staff route {path} names no permission: add **needs(Permission.…)")
                self.permission = Permission(extra[PERMISSION_KEY])  # before: the handler is built in there
                super().__init__(path, endpoint, **kwargs)

            def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
                handler = super().get_route_handler()
                permission = self.permission

                async def guarded(request: Request) -> Response:
                    principal = await gate.principal(request)
                    request.state.principal = principal  # known even when refused: the refusal says why
                    if permission not in principal.permissions:
                        raise _forbidden(principal, permission)
                    with acting_as(principal.actor):
                        response = await handler(request)
                    response.headers["Cache-Control"] = "no-store"  # staff data: keep out of caches
                    return response

                return guarded

        return StaffRoute

    def router(self, prefix: str = "") -> APIRouter:
        """A router whose every route needs a caller with the route's permission."""
        return APIRouter(prefix=prefix, route_class=self.route_class(), dependencies=[Security(BEARER)])


async def _echoes_csrf(request: Request, expected: str) -> bool:
    given = request.headers.get(CSRF_HEADER, "")
    if not given and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        value = (await request.form()).get(CSRF_FIELD)
        given = value if isinstance(value, str) else ""
    return bool(given) and hmac.compare_digest(given.encode(), expected.encode())


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(status_code=401, detail=detail, headers={"WWW-Authenticate": "Bearer"})


def _forbidden(principal: Principal, permission: Permission) -> HTTPException:
    if principal.signed_in is not None and not principal.signed_in.session.second_factor_done:
        return HTTPException(status_code=403, detail="set up your second factor first: /account/2fa")
    return HTTPException(
        status_code=403, detail=f"{principal.user.role} may not do this ({permission.value})"
    )


def principal_of(request: Request) -> Principal:
    principal = request.state.principal
    assert isinstance(principal, Principal)
    return principal
