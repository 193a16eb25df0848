"""`/console/subscribers`, `/console/audit` and `/console/users`: find, add, import (every bad line
shown, nothing written), export and erase subscribers; read the audit log; manage staff users and
their tokens — through the functions `broadcaster subscribers|audit|users|tokens` call."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Query, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from broadcaster.auth import tokens as token_store
from broadcaster.auth import users as user_store
from broadcaster.auth.audit import find_events
from broadcaster.auth.roles import ROLES, Permission
from broadcaster.config import Settings
from broadcaster.db import SessionFactory
from broadcaster.delivery.erasure import erase_subscriber
from broadcaster.delivery.subscriber_reads import export_csv, find_subscriptions
from broadcaster.delivery.subscribers import ImportError_, import_subscribers, parse_csv
from broadcaster.errors import BroadcasterError
from broadcaster.web.console.shell import Console
from broadcaster.web.ids import RowId
from broadcaster.web.staff_gate import StaffGate, needs

__all__ = ["admin_pages_router"]

MAX_UPLOAD = 50 * 1024 * 1024
Short = Annotated[str, Form(max_length=254)]


def admin_pages_router(
    console: Console, settings: Settings, sessions: SessionFactory, gate: StaffGate
) -> APIRouter:
    router = gate.router("/console")
    subscribers_read, subscribers_write = (
        needs(Permission.SUBSCRIBERS_READ),
        needs(Permission.SUBSCRIBERS_WRITE),
    )
    admin = needs(Permission.USERS_MANAGE)

    async def subscribers_page(
        request: Request, *, q: str = "", after: int = 0, status_code: int = 200, **context: object
    ) -> HTMLResponse:
        rows = await find_subscriptions(sessions, search=q, after_id=after, limit=100)
        return console.render(
            request, "subscribers.html.j2", status_code=status_code, rows=rows, q=q,
            next=rows[-1][0].id if len(rows) == 100 else None,
            **({"problems": [], "notice": "", "error": ""} | context),
        )  # fmt: skip

    @router.get("/subscribers", response_class=HTMLResponse, include_in_schema=False, **subscribers_read)
    async def subscribers(
        request: Request,
        q: Annotated[str, Query(max_length=200)] = "",
        after: Annotated[int, Query(ge=0)] = 0,
    ) -> HTMLResponse:
        return await subscribers_page(request, q=q, after=after)

    @router.post("/subscribers/import", include_in_schema=False, **subscribers_write)
    async def import_(request: Request, file: UploadFile) -> Response:
        """Every line is checked first; one bad line and nothing is written, each bad one listed."""
        raw = await file.read(MAX_UPLOAD + 1)
        if len(raw) > MAX_UPLOAD:
            return await subscribers_page(request, status_code=413, error=f"{file.filename}: more than 50 MB")
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            return await subscribers_page(
                request, status_code=422, error=f"{file.filename}: not UTF-8 (byte {exc.start})"
            )
        entries, problems = parse_csv(text)
        try:
            if problems:
                raise ImportError_(problems)
            async with sessions() as session:
                report = await import_subscribers(session, settings, entries)
        except ImportError_ as exc:
            return await subscribers_page(request, status_code=422, problems=exc.problems)
        notice = f"{report.subscribers} / {report.subscriptions} / {report.already_subscribed}"
        return await subscribers_page(request, notice=notice)

    @router.get("/subscribers/export.csv", include_in_schema=False, **subscribers_read)
    async def export() -> Response:
        return Response(
            await export_csv(sessions), media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="subscribers.csv"'},
        )  # fmt: skip

    @router.post("/subscribers/{subscriber_id}/erase", include_in_schema=False, **subscribers_write)
    async def erase(request: Request, subscriber_id: RowId) -> Response:
        try:
            await erase_subscriber(sessions, subscriber_id)
        except BroadcasterError as exc:
            return await subscribers_page(request, status_code=404, error=str(exc))
        return RedirectResponse(f"{console.base_url}/console/subscribers", status_code=303)

    @router.get(
        "/audit", response_class=HTMLResponse, include_in_schema=False, **needs(Permission.AUDIT_READ)
    )
    async def audit(
        request: Request,
        actor: Annotated[str, Query(max_length=200)] = "",
        object: Annotated[str, Query(max_length=120)] = "",  # noqa: A002 (the filter's name)
    ) -> HTMLResponse:
        events = await find_events(sessions, actor=actor or None, object_=object or None, limit=300)
        return console.render(request, "audit.html.j2", events=events, actor=actor, object=object)

    async def users_page(request: Request, *, status_code: int = 200, **context: object) -> HTMLResponse:
        return console.render(
            request, "users.html.j2", status_code=status_code, users=await user_store.list_users(sessions),
            tokens=await token_store.list_tokens(sessions), roles=list(ROLES),
            **({"error": "", "shown": ""} | context),
        )  # fmt: skip

    @router.get("/users", response_class=HTMLResponse, include_in_schema=False, **admin)
    async def users(request: Request) -> HTMLResponse:
        return await users_page(request)

    @router.post("/users", include_in_schema=False, **admin)
    async def add_user(
        request: Request,
        email: Short,
        role: Annotated[str, Form(max_length=16)],
        display_name: Annotated[str, Form(max_length=120)] = "",
        locale: Annotated[str, Form(max_length=8)] = "fr",
    ) -> Response:
        try:
            added = await user_store.add_user(sessions, email, display_name, role, locale)
        except BroadcasterError as exc:
            return await users_page(request, status_code=422, error=str(exc))
        link = f"{console.base_url}/setup/{added.setup_secret}"
        return await users_page(request, shown=link)  # shown once: the new user's set-up link

    @router.post("/users/{email}/role", include_in_schema=False, **admin)
    async def set_role(request: Request, email: str, role: Annotated[str, Form(max_length=16)]) -> Response:
        try:
            await user_store.set_role(sessions, email, role)
        except BroadcasterError as exc:
            return await users_page(request, status_code=422, error=str(exc))
        return RedirectResponse(f"{console.base_url}/console/users", status_code=303)

    @router.post("/users/{email}/disable", include_in_schema=False, **admin)
    async def disable(
        request: Request, email: str, enable: Annotated[str, Form(max_length=4)] = ""
    ) -> Response:
        try:
            await user_store.set_disabled(sessions, email, not enable)
        except BroadcasterError as exc:
            return await users_page(request, status_code=422, error=str(exc))
        return RedirectResponse(f"{console.base_url}/console/users", status_code=303)

    @router.post("/tokens/{token_id}/revoke", include_in_schema=False, **admin)
    async def revoke(request: Request, token_id: RowId) -> Response:
        try:
            await token_store.revoke_token(sessions, token_id)
        except BroadcasterError as exc:
            return await users_page(request, status_code=404, error=str(exc))
        return RedirectResponse(f"{console.base_url}/console/users", status_code=303)

    return router
