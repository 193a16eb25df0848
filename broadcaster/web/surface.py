"""What every response of the service carries, and where a trailing-slash redirect may go.

Every response gets the security headers below unless its route set its own (the unsubscribe
pages their `no-referrer`, `/docs` its CSP): pages load nothing but our own stylesheet, run no
script, cannot be framed. A path that only differs from a route by its trailing slash is
redirected to that route under `[server] public_base_url`, never to the `Host` the client sent.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.datastructures import MutableHeaders
from starlette.responses import RedirectResponse
from starlette.routing import Match, Router
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["SecurityHeaders", "page_headers", "redirect_slashes_to"]


def _origin(base_url: str) -> str:
    parts = urlsplit(base_url)
    return f"{parts.scheme}://{parts.netloc}"


def page_headers(public_base_url: str) -> dict[str, str]:
    """The security headers of our pages; links and forms point at `public_base_url`."""
    ours = f"'self' {_origin(public_base_url)}"
    return {
        "Content-Security-Policy": (
            f"default-src 'none'; style-src {ours}; img-src {ours}; form-action {ours}; "
            "frame-ancestors 'none'; base-uri 'none'"
        ),
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "same-origin",
    }


class SecurityHeaders:
    """ASGI middleware: `page_headers` on every HTTP response, a route's own values first."""

    def __init__(self, app: ASGIApp, public_base_url: str) -> None:
        self.app = app
        self._headers = page_headers(public_base_url)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in self._headers.items():
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)


def redirect_slashes_to(router: Router, public_base_url: str) -> None:
    """Starlette's trailing-slash redirect (turn `redirect_slashes` off), built from our own base URL.

    It runs where Starlette's did: only for a path no route matched.
    """
    base = public_base_url.rstrip("/")
    not_found = router.default

    async def default(scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"]
        if scope["type"] == "http" and path != "/":
            twin = path.rstrip("/") if path.endswith("/") else path + "/"
            if any(route.matches({**scope, "path": twin})[0] is not Match.NONE for route in router.routes):
                query = scope["query_string"].decode("latin-1")
                await RedirectResponse(base + twin + (f"?{query}" if query else ""))(scope, receive, send)
                return
        await not_found(scope, receive, send)

    router.default = default
