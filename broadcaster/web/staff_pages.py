"""The staff's sign-in, set-up and account pages: plain forms, no script.

`/login` (e-mail, password, code), `/setup/<secret>` (choose a password from a set-up link),
`/account` (who you are, sign out, sign out everywhere), `/account/2fa` (set up the authenticator).
The sign-in form is protected by a double-submit cookie; once signed in, by the session's CSRF token.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import APIRouter, Form, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from broadcaster.auth.audit import Actor, acting_as, record
from broadcaster.auth.hashing import MIN_PASSWORD, new_secret
from broadcaster.auth.second_factor import begin_enrolment, confirm_enrolment
from broadcaster.auth.sign_in import SignInRefused, sign_in
from broadcaster.auth.staff_sessions import (
    SignedIn,
    end_all_sessions,
    end_session,
    mark_second_factor_done,
    start_session,
)
from broadcaster.auth.users import use_setup_link
from broadcaster.config import Settings
from broadcaster.db import SessionFactory
from broadcaster.errors import BroadcasterError, NotFound
from broadcaster.web.catalogs import gettext_for, staff_language
from broadcaster.web.pages import Pages, visitor_locale
from broadcaster.web.staff_gate import COOKIE, StaffGate, client_address

__all__ = ["LOGIN_COOKIE", "back_to", "staff_pages_router"]

LOGIN_COOKIE = "broadcaster_login"  # the sign-in form's double-submit token, before there is a session
_NO_STORE = {"Cache-Control": "no-store"}

Text = Annotated[str, Form(max_length=256)]
Password = Annotated[str, Form(max_length=1024)]


def back_to(path: str) -> str:
    """Where to go once signed in: a console page asked for, never another site (no open redirect)."""
    return path if path.startswith("/console") and "//" not in path and "\\" not in path else "/console"


def staff_pages_router(settings: Settings, sessions: SessionFactory, gate: StaffGate) -> APIRouter:
    router = APIRouter()
    pages = Pages(settings)
    base = pages.base_url

    def page(name: str, locale: str, *, status_code: int = 200, **context: object) -> HTMLResponse:
        language = staff_language(locale)
        response = pages.render(
            f"staff/{name}", language, status_code=status_code, _=gettext_for(language), **context
        )
        response.headers.update(_NO_STORE)
        return response

    def cookie(response: Response, name: str, value: str, max_age: int | None) -> None:
        response.set_cookie(
            name, value, max_age=max_age, httponly=True, samesite="lax", secure=gate.secure_cookie, path="/"
        )

    def login_page(
        request: Request,
        *,
        error: str = "",
        notice: str = "",
        email: str = "",
        status: int = 200,
        next_: str = "",
    ) -> HTMLResponse:
        csrf = new_secret(24)
        response = page(
            "login.html.j2", visitor_locale(request, settings), status_code=status,
            csrf=csrf, error=error, notice=notice, email=email, next=next_ or "/console",
        )  # fmt: skip
        cookie(response, LOGIN_COOKIE, csrf, 3600)
        return response

    async def signed_in_or_login(request: Request) -> SignedIn | RedirectResponse:
        signed_in = await gate.signed_in(request)
        return signed_in if signed_in is not None else RedirectResponse(f"{base}/login", status_code=303)

    def same(given: str, expected: str) -> bool:
        return bool(given) and bool(expected) and hmac.compare_digest(given.encode(), expected.encode())

    @router.get("/login", response_class=HTMLResponse, include_in_schema=False)
    async def login_form(request: Request, done: str = "", next: str = "") -> HTMLResponse:  # noqa: A002
        _ = gettext_for(visitor_locale(request, settings))
        notice = _("Password saved: sign in.") if done == "password" else ""
        return login_page(request, notice=notice, next_=back_to(next))

    @router.post("/login", include_in_schema=False)
    async def login(
        request: Request, email: Text, password: Password, code: Annotated[str, Form(max_length=32)] = "",
        csrf_token: Annotated[str, Form(max_length=64)] = "",
        next_: Annotated[str, Form(alias="next", max_length=300)] = "",
    ) -> Response:  # fmt: skip
        _ = gettext_for(visitor_locale(request, settings))
        if not same(csrf_token, request.cookies.get(LOGIN_COOKIE, "")):
            return login_page(
                request, error=_("the form expired: sign in again"), email=email, status=403, next_=next_
            )
        address = client_address(request)
        try:
            with acting_as(Actor("anonymous", address)):
                result = await sign_in(
                    sessions, email, password, code, address=address, throttle=gate.throttle,
                    require_2fa=gate.require_2fa, now=gate.clock(),
                )  # fmt: skip
        except SignInRefused as exc:
            return login_page(request, error=exc.said_with(_), email=email, status=401, next_=next_)
        value = await start_session(sessions, result.user, address, result.second_factor_done, gate.clock())
        target = back_to(next_) if result.second_factor_done else "/account/2fa"
        response = RedirectResponse(f"{base}{target}", status_code=303)
        cookie(response, COOKIE, value, gate.rules.lifetime_seconds)
        response.delete_cookie(LOGIN_COOKIE, path="/")
        return response

    @router.get("/setup/{secret}", response_class=HTMLResponse, include_in_schema=False)
    async def setup_form(request: Request, secret: str) -> HTMLResponse:
        return page("setup.html.j2", visitor_locale(request, settings), secret=secret, error="")

    @router.post("/setup/{secret}", include_in_schema=False)
    async def setup(request: Request, secret: str, password: Password, again: Password) -> Response:
        locale = visitor_locale(request, settings)
        _ = gettext_for(locale)
        if password != again or len(password) < MIN_PASSWORD:
            error = (
                _("The two passwords differ.")
                if password != again
                else _("a password needs at least 12 characters")
            )
            return page("setup.html.j2", locale, status_code=400, secret=secret, error=error)
        try:
            with acting_as(Actor("setup link", client_address(request))):
                await use_setup_link(sessions, secret, password, gate.clock())
        except NotFound:
            error = _("this set-up link is unknown, used or expired: ask an admin for a new one")
            return page("setup.html.j2", locale, status_code=400, secret=secret, error=error)
        return RedirectResponse(f"{base}/login?done=password", status_code=303)

    @router.get("/account", response_class=HTMLResponse, include_in_schema=False)
    async def account(request: Request, done: str = "") -> Response:
        found = await signed_in_or_login(request)
        if isinstance(found, RedirectResponse):
            return found
        _ = gettext_for(found.user.locale)
        notice = _("All your sessions are closed.") if done == "everywhere" else ""
        return page(
            "account.html.j2",
            found.user.locale,
            user=found.user,
            csrf=found.session.csrf_token,
            notice=notice,
        )

    @router.get("/account/2fa", response_class=HTMLResponse, include_in_schema=False)
    async def enrol_form(request: Request) -> Response:
        found = await signed_in_or_login(request)
        if isinstance(found, RedirectResponse):
            return found
        if found.user.totp_enrolled_at is not None:
            return RedirectResponse(f"{base}/account", status_code=303)
        assert found.user.id is not None
        enrolment = await begin_enrolment(sessions, found.user.id, settings.brand.name)
        return page(
            "enrol.html.j2", found.user.locale, enrolment=enrolment, csrf=found.session.csrf_token,
            required=not found.session.second_factor_done, codes=[], error="",
        )  # fmt: skip

    @router.post("/account/2fa", include_in_schema=False)
    async def enrol(
        request: Request,
        code: Annotated[str, Form(max_length=16)],
        csrf_token: Annotated[str, Form(max_length=64)] = "",
    ) -> Response:
        found = await signed_in_or_login(request)
        if isinstance(found, RedirectResponse):
            return found
        if not same(csrf_token, found.session.csrf_token):
            return Response("missing or wrong CSRF token", status_code=403, headers=_NO_STORE)
        assert found.user.id is not None and found.session.id is not None
        try:
            with acting_as(Actor(f"user:{found.user.email}", client_address(request))):
                codes = await confirm_enrolment(sessions, found.user.id, code, gate.clock())
        except BroadcasterError:
            enrolment = await begin_enrolment(sessions, found.user.id, settings.brand.name)
            _ = gettext_for(found.user.locale)
            error = _("this is not the code the app shows now; type the current one")
            return page(
                "enrol.html.j2", found.user.locale, status_code=400, enrolment=enrolment,
                csrf=found.session.csrf_token, required=not found.session.second_factor_done, codes=[],
                error=error,
            )  # fmt: skip
        await mark_second_factor_done(sessions, found.session.id)
        return page("enrol.html.j2", found.user.locale, codes=codes, csrf="", required=False, error="")

    async def signed_out(request: Request, everywhere: bool, csrf_token: str) -> Response:
        found = await gate.signed_in(request)
        if found is None:
            return RedirectResponse(f"{base}/login", status_code=303)
        if not same(csrf_token, found.session.csrf_token):
            return Response("missing or wrong CSRF token", status_code=403, headers=_NO_STORE)
        assert found.session.id is not None and found.user.id is not None
        if everywhere:
            await end_all_sessions(sessions, found.user.id, gate.clock())
        else:
            await end_session(sessions, found.session.id, gate.clock())
        async with sessions() as session, session.begin():
            with acting_as(Actor(f"user:{found.user.email}", client_address(request))):
                action = "logout.everywhere" if everywhere else "logout"
                record(session, action, f"user:{found.user.email}")
        response = RedirectResponse(f"{base}/login", status_code=303)
        response.delete_cookie(COOKIE, path="/")
        return response

    @router.post("/logout", include_in_schema=False)
    async def logout(request: Request, csrf_token: Annotated[str, Form(max_length=64)] = "") -> Response:
        return await signed_out(request, False, csrf_token)

    @router.post("/logout/everywhere", include_in_schema=False)
    async def logout_everywhere(
        request: Request, csrf_token: Annotated[str, Form(max_length=64)] = ""
    ) -> Response:
        return await signed_out(request, True, csrf_token)

    return router
