"""What every console page shares: who is signed in, their words and clock, the menu their role
opens, the CSRF token its forms carry, and the refusals (sign in first, not for your role)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

from fastapi import HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from broadcaster.auth.roles import Permission
from broadcaster.config import Settings
from broadcaster.web.catalogs import gettext_for
from broadcaster.web.pages import Pages
from broadcaster.web.staff_gate import Principal

__all__ = ["N_", "Console", "MenuItem", "refusal_page"]

#: Pages may run our own script (live previews, progress, the inbox) and call our API; nothing else.
CONSOLE_CSP = (
    "default-src 'none'; script-src {ours}; style-src {ours}; img-src {ours} data:; connect-src {ours}; "
    "form-action {ours}; frame-src 'self'; frame-ancestors 'none'; base-uri 'none'"
)


@dataclass(frozen=True, slots=True)
class MenuItem:
    path: str
    label: str  # the English words, translated when shown
    permission: Permission


def N_(text: str) -> str:  # noqa: N802 (gettext's name for "translated when shown")
    """Marks words for the catalog that are translated later, when a page shows them."""
    return text


MENU = (
    MenuItem("/console", N_("Overview"), Permission.INCIDENTS_READ),
    MenuItem("/console/incidents/new", N_("New incident"), Permission.INCIDENTS_WRITE),
    MenuItem("/console/inbox", N_("Inbox"), Permission.INBOX_READ),
    MenuItem("/console/maintenance", N_("Maintenance"), Permission.INCIDENTS_READ),
    MenuItem("/console/subscribers", N_("Subscribers"), Permission.SUBSCRIBERS_READ),
    MenuItem("/console/users", N_("Users"), Permission.USERS_MANAGE),
    MenuItem("/console/audit", N_("Audit log"), Permission.AUDIT_READ),
)


class Console:
    """Renders console pages (`web/templates/console/*.j2`) for the signed-in caller."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.pages = Pages(settings)
        self.base_url = self.pages.base_url
        origin = urlsplit(self.base_url)
        self.csp = CONSOLE_CSP.format(ours=f"'self' {origin.scheme}://{origin.netloc}")

    def render(self, request: Request, name: str, *, status_code: int = 200, **context: Any) -> HTMLResponse:
        principal: Principal = request.state.principal
        user = principal.user
        csrf = principal.signed_in.session.csrf_token if principal.signed_in else ""
        menu = [item for item in MENU if item.permission in principal.permissions]
        response = self.pages.render(
            f"console/{name}", user.locale, status_code=status_code, _=gettext_for(user.locale),
            user=user, csrf=csrf, menu=menu, here=request.url.path, may=principal.permissions,
            Permission=Permission, **context,
        )  # fmt: skip
        response.headers["Content-Security-Policy"] = self.csp
        response.headers["Cache-Control"] = "no-store"
        return response


def refusal_page(console: Console, request: Request, exc: HTTPException) -> Response:
    """401: to the sign-in page (and back here after); 403: set up the second factor, or a page that
    says this is not for your role."""
    if exc.status_code == 401:
        back = quote(request.url.path, safe="/")
        return RedirectResponse(f"{console.base_url}/login?next={back}", status_code=303)
    principal = getattr(request.state, "principal", None)
    if principal is None:  # refused before we knew who: a change without the session's CSRF token
        return HTMLResponse(
            str(exc.detail), status_code=exc.status_code, headers={"Cache-Control": "no-store"}
        )
    if principal.signed_in is not None and not principal.signed_in.session.second_factor_done:
        return RedirectResponse(f"{console.base_url}/account/2fa", status_code=303)
    if exc.status_code == 404:
        return console.render(request, "missing.html.j2", status_code=404)
    return console.render(request, "forbidden.html.j2", status_code=exc.status_code, reason=str(exc.detail))
