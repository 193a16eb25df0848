"""The role × route matrix, generated from the app itself: every staff route names a permission, and
each role reaches exactly the routes its permissions allow (and the OpenAPI says which)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import fastapi.routing
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from sse_starlette import EventSourceResponse

from broadcaster.auth.roles import ROLES, Permission
from broadcaster.auth.tokens import revoke_token
from broadcaster.db import SessionFactory
from broadcaster.web.app import create_app
from broadcaster.web.staff_gate import PERMISSION_KEY
from tests.conftest import make_settings
from tests.served import served
from tests.staff import bearer, staff_token

#: Routes anyone may call: customers' pages and feeds, the providers' webhooks (each with its own
#: secret), the sign-in pages, health and documentation. Anything else must name a permission.
PUBLIC = re.compile(
    r"^/(status|incidents|incident|maintenance|feed|unsubscribe|webhooks|healthz|static|docs|openapi|"
    r"login|logout|setup|account|robots|favicon|\.well-known)"
)
STAFF = ("/api/", "/metrics", "/console")
PUBLIC_API = ("/api/v1/status",)  # the status page's JSON summary


def is_staff(path: str) -> bool:
    return path.startswith(STAFF) and path not in PUBLIC_API


@dataclass(frozen=True, slots=True)
class Route:
    path: str
    methods: frozenset[str]
    openapi_extra: dict[str, Any]
    streams: bool = False  # server-sent events: never ends in-process (a real server's test reads it)


def routes_of(app: FastAPI) -> list[Route]:
    """Every API route with its full path (FastAPI 0.165 keeps included routers as nodes)."""
    found = []
    contexts = getattr(fastapi.routing, "iter_route_contexts", None)
    for entry in contexts(app.routes) if contexts else app.routes:
        route = getattr(entry, "original_route", entry)
        if isinstance(route, APIRoute):
            streams = isinstance(route.response_class, type) and issubclass(
                route.response_class, EventSourceResponse
            )
            found.append(
                Route(entry.path, frozenset(entry.methods or ()), route.openapi_extra or {}, streams)
            )
    return found


def app_routes(database_url: str) -> list[Route]:
    return routes_of(create_app(make_settings(database_url, server={"metrics": True}), dispatch=False))


def test_every_route_is_either_public_or_names_its_permission(database_url: str) -> None:
    routes = app_routes(database_url)
    assert any(r.path.startswith("/api/v1/inbox") for r in routes)
    for route in routes:
        extra = route.openapi_extra
        if is_staff(route.path):
            assert PERMISSION_KEY in extra, f"{route.path} names no permission"
            assert Permission(extra[PERMISSION_KEY])
        else:
            public = PUBLIC.match(route.path) or route.path in PUBLIC_API or route.path == "/"
            assert public, f"{route.path}: public or staff? say which"
            assert PERMISSION_KEY not in extra


def _filled(path: str) -> str:
    """Path parameters set to things that exist nowhere: the route answers 404/422, it changes nothing."""
    return re.sub(r"\{([a-z_]+)\}", lambda m: "nobody@shop.example" if "email" in m[1] else "999999", path)


@pytest.mark.parametrize("role", list(ROLES))
async def test_each_role_reaches_exactly_what_its_permissions_allow(
    database_url: str, sessions: SessionFactory, role: str
) -> None:
    token = await staff_token(sessions, role)
    app = create_app(make_settings(database_url, server={"metrics": True}), dispatch=False)
    matrix: list[tuple[str, str, str, int]] = []
    async with served(app) as client:
        for route in [r for r in routes_of(app) if is_staff(r.path) and not r.streams]:
            permission = Permission((route.openapi_extra or {})[PERMISSION_KEY])
            for method in sorted(route.methods - {"HEAD"}):
                body = {} if method in ("POST", "PATCH", "PUT") else None
                response = await client.request(method, _filled(route.path), json=body, headers=bearer(token))
                matrix.append((method, route.path, permission.value, response.status_code))
                allowed = permission in ROLES[role]
                if allowed:
                    assert response.status_code not in (401, 403), (role, method, route.path, response.text)
                else:
                    assert response.status_code == 403, (role, method, route.path, response.status_code)
                    if route.path.startswith("/console"):  # a page saying so, in the user's language
                        assert response.headers["content-type"].startswith("text/html")
                        assert f"({role})" in response.text
                        continue
                    assert response.headers["content-type"] == "application/problem+json"
                    problem = response.json()
                    assert f"{role} may not" in problem["detail"] and problem["status"] == 403
                    assert problem["instance"] == _filled(route.path)
                if response.is_success:
                    assert response.headers["cache-control"] == "no-store"
    assert len(matrix) >= 16  # inbox, schedule, metrics, me, audit, users, tokens


async def test_a_token_scoped_below_its_owner_does_only_what_the_scope_allows_and_stops_when_revoked(
    database_url: str, sessions: SessionFactory
) -> None:
    from broadcaster.auth.tokens import create_token

    await staff_token(sessions, "admin", "ana@shop.example")
    scoped = await create_token(sessions, "ana@shop.example", "prometheus", "viewer")
    app = create_app(make_settings(database_url, server={"metrics": True}), dispatch=False)
    async with served(app) as client:
        assert (await client.get("/metrics", headers=bearer(scoped.plaintext))).status_code == 200
        assert (await client.get("/api/v1/audit", headers=bearer(scoped.plaintext))).status_code == 403
        assert (await client.get("/api/v1/inbox", headers=bearer(scoped.plaintext))).status_code == 403
        assert scoped.token.id is not None
        await revoke_token(sessions, scoped.token.id)
        assert (await client.get("/metrics", headers=bearer(scoped.plaintext))).status_code == 401


def test_the_openapi_document_names_the_bearer_scheme_and_each_routes_permission(database_url: str) -> None:
    app = create_app(make_settings(database_url), dispatch=False)
    document = app.openapi()
    assert "staffToken" in document["components"]["securitySchemes"]
    inbox = document["paths"]["/api/v1/inbox"]["get"]
    assert inbox[PERMISSION_KEY] == "inbox:read" and inbox["security"] == [{"staffToken": []}]
    assert document["paths"]["/api/v1/users"]["post"][PERMISSION_KEY] == "users:manage"


def test_the_event_stream_names_its_permission_and_is_the_only_stream(database_url: str) -> None:
    streams = [r for r in app_routes(database_url) if r.streams]
    assert [(r.path, r.openapi_extra[PERMISSION_KEY]) for r in streams] == [
        ("/api/v1/events", "incidents:read")
    ]
    # every role reads incidents, so every role may listen; what each hears is scoped by role
    # (tests/test_events_feed.py) and read from a real server (tests/e2e/test_staff_api.py)
    assert all(Permission.INCIDENTS_READ in permissions for permissions in ROLES.values())
