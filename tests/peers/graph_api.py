"""A fake Facebook Graph API over real HTTP (Starlette + uvicorn in its own thread).

It serves what `FacebookChannel` calls through facebook-sdk: reading the page, page posts,
comments, and the Messenger Send API, with the Graph API's real error bodies and the faults a
channel must survive: an expired token, rate limits, the 24-hour Messenger window, an outage.

>>> with GraphApiPeer(page_id="104512345678901", tokens={"PAGE-TOKEN"}) as peer:
...     settings = FacebookSettings(page_id=peer.page_id, graph_base_url=peer.base_url, ...)
"""

from __future__ import annotations

import itertools
import json
import re
import secrets
import threading
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.peers.http_server import ServedPeer, ServerThread

__all__ = ["GraphApiPeer"]

_VERSION = re.compile(r"v\d+\.\d+")
_UNAVAILABLE = b"<html><body><h1>Sorry, something went wrong.</h1></body></html>"
_EXPIRED = (
    "Error validating access token: Session has expired on Friday, 20-Nov-26 04:00:00 PST. "
    "The current time is Friday, 20-Nov-26 05:12:41 PST."
)
_MESSENGER_MAX_TEXT = 2000  # Send API reference: message.text "has a 2000 character limit"
_RATE_MESSAGES = {
    4: "(#4) Application request limit reached",
    17: "(#17) User request limit reached",
    32: "(#32) Page request limit reached",
    613: "(#613) Calls to this api have exceeded the rate limit.",
}


class GraphApiPeer(ServedPeer):
    """A Graph API on 127.0.0.1; give `peer.base_url` to `FacebookSettings.graph_base_url`.

    Faults: `expire_token()`, `rate_limit_next(n)`, `outside_window(psid)`, `fail_next(n)`, `down`.
    Records: `posts`, `comments`, `messages` (each with the API `version` of its path), `requests`.
    """

    def __init__(
        self,
        *,
        page_id: str = "104512345678901",
        page_name: str = "Maison Exemple",
        tokens: Iterable[str] = ("PAGE-TOKEN",),
    ) -> None:
        self.page_id = page_id
        self.page_name = page_name
        self.valid_tokens = frozenset(tokens)
        self.down = False
        self.posts: list[dict[str, Any]] = []
        self.comments: list[dict[str, Any]] = []
        self.messages: list[dict[str, Any]] = []
        self.requests: list[dict[str, str]] = []  # method, path, version (never the token)
        self._cond = threading.Condition()
        self._expired = False
        self._rate_limited = 0
        self._rate_code = 32
        self._regain_minutes = 0
        self._failing = 0
        self._closed_windows: set[str] = set()
        self._objects: set[str] = set()  # ids that exist: posts, comments, seeded customer comments
        self._ids = itertools.count(1)
        app = Starlette(
            routes=[
                Route("/{version}/{object_id}", self._read, methods=["GET"]),
                Route("/{version}/{object_id}/{edge}", self._write, methods=["POST"]),
            ]
        )
        self._server = ServerThread(app, "graph-peer")
        self.port = self._server.port
        self.base_url = self._server.origin

    # ----- faults and records ----------------------------------------------------------------

    def reset(self) -> None:
        """Forget records and faults (a peer shared by several tests)."""
        with self._cond:
            self.down = False
            self.posts.clear()
            self.comments.clear()
            self.messages.clear()
            self.requests.clear()
            self._expired = False
            self._rate_limited = self._failing = self._regain_minutes = 0
            self._closed_windows.clear()
            self._objects.clear()

    def expire_token(self) -> None:
        """Every token now fails with OAuthException 190 / subcode 463 (session expired)."""
        with self._cond:
            self._expired = True

    def rate_limit_next(self, n: int, *, code: int = 32, regain_minutes: int = 0) -> None:
        """Answer the next `n` requests with rate-limit error `code` (and a usage header if minutes)."""
        with self._cond:
            self._rate_limited, self._rate_code, self._regain_minutes = n, code, regain_minutes

    def fail_next(self, n: int) -> None:
        """Answer the next `n` requests with a transient error (#2, HTTP 503)."""
        with self._cond:
            self._failing = n

    def outside_window(self, psid: str) -> None:
        """The customer `psid` last wrote more than 24 h ago: standard replies are refused."""
        with self._cond:
            self._closed_windows.add(psid)

    def add_object(self, object_id: str) -> None:
        """Make `object_id` exist (a customer's comment the page may answer)."""
        with self._cond:
            self._objects.add(object_id)

    def delete_object(self, object_id: str) -> None:
        """Delete a post or comment, as a moderator would."""
        with self._cond:
            self._objects.discard(object_id)

    def wait_for(self, count: int, timeout: float) -> bool:
        """Wait until at least `count` posts + comments + messages were accepted."""
        with self._cond:
            return self._cond.wait_for(
                lambda: len(self.posts) + len(self.comments) + len(self.messages) >= count, timeout=timeout
            )

    # ----- HTTP ------------------------------------------------------------------------------

    async def _read(self, request: Request) -> Response:
        params = await _params(request)
        problem = self._refuse(request, params)
        if problem is not None:
            return problem
        object_id = request.path_params["object_id"]
        if object_id != self.page_id:
            with self._cond:
                exists = object_id in self._objects
            if not exists:
                return _missing(object_id)
            return JSONResponse({"id": object_id})
        page = {"id": self.page_id, "name": self.page_name, "category": "Clothing Store"}
        fields = params.get("fields", "")
        if fields:
            page = {k: v for k, v in page.items() if k in fields.split(",") or k == "id"}
        return JSONResponse(page)

    async def _write(self, request: Request) -> Response:
        params = await _params(request)
        problem = self._refuse(request, params)
        if problem is not None:
            return problem
        version = request.path_params["version"]
        object_id = request.path_params["object_id"]
        edge = request.path_params["edge"]
        if edge == "feed":
            return self._post(object_id, params, version)
        if edge == "comments":
            return self._comment(object_id, params, version)
        if edge == "messages":
            return self._message(object_id, params, version)
        return _error(400, 2500, f"Unknown path components: /{edge}", "OAuthException")

    def _refuse(self, request: Request, params: dict[str, str]) -> Response | None:
        """Outage, version, token and rate-limit checks shared by every route, in Graph's order."""
        version = request.path_params["version"]
        with self._cond:
            self.requests.append({"method": request.method, "path": request.url.path, "version": version})
        if self.down:
            return Response(_UNAVAILABLE, status_code=503, media_type="text/html")
        if not _VERSION.fullmatch(version):
            return _error(400, 2500, f"Unknown path components: /{version}", "OAuthException")
        token = params.get("access_token", "")
        bearer = request.headers.get("authorization", "")
        if not token and bearer.lower().startswith("bearer "):
            token = bearer[7:].strip()
        if not token:
            return _error(400, 104, "An access token is required to request this resource.", "OAuthException")
        if token not in self.valid_tokens:
            return _error(
                400, 190, "Invalid OAuth access token - Cannot parse access token", "OAuthException"
            )
        with self._cond:
            if self._expired:
                return _error(400, 190, _EXPIRED, "OAuthException", subcode=463)
            if self._failing > 0:
                self._failing -= 1
                return _error(503, 2, "Service temporarily unavailable", "OAuthException", transient=True)
            if self._rate_limited > 0:
                self._rate_limited -= 1
                code = self._rate_code
                headers = {}
                if self._regain_minutes:
                    usage = {
                        self.page_id: [
                            {
                                "type": "pages",
                                "call_count": 100,
                                "total_cputime": 12,
                                "total_time": 30,
                                "estimated_time_to_regain_access": self._regain_minutes,
                            }
                        ]
                    }
                    headers["x-business-use-case-usage"] = json.dumps(usage)
                message = _RATE_MESSAGES.get(code, f"(#{code}) Rate limit reached")
                return _error(400 if code != 4 else 403, code, message, "OAuthException", headers=headers)
        return None

    def _post(self, object_id: str, params: dict[str, str], version: str) -> Response:
        if object_id != self.page_id:
            return _error(
                403,
                200,
                "(#200) If posting to a group, requires app being installed in the group",
                "OAuthException",
            )
        message = params.get("message", "")
        if not message:
            return _error(400, 100, "(#100) Missing message or attachment", "OAuthException")
        with self._cond:
            if self.posts and self.posts[-1]["message"] == message:
                # Graph refuses the same status twice in a row.
                return _error(400, 506, "Duplicate status message", "OAuthException")
            post_id = f"{self.page_id}_{next(self._ids)}"
            self._objects.add(post_id)
            self.posts.append({"id": post_id, "message": message, "version": version})
            self._cond.notify_all()
        return JSONResponse({"id": post_id})

    def _comment(self, object_id: str, params: dict[str, str], version: str) -> Response:
        message = params.get("message", "")
        with self._cond:
            if object_id not in self._objects:
                return _missing(object_id)
            if not message:
                return _error(400, 100, "(#100) Missing message or attachment", "OAuthException")
            comment_id = f"{object_id.rsplit('_', 1)[-1]}_{next(self._ids)}"
            self._objects.add(comment_id)
            self.comments.append(
                {"id": comment_id, "parent": object_id, "message": message, "version": version}
            )
            self._cond.notify_all()
        return JSONResponse({"id": comment_id})

    def _message(self, object_id: str, params: dict[str, str], version: str) -> Response:
        if object_id != self.page_id:
            return _missing(object_id)
        try:
            recipient = json.loads(params.get("recipient", ""))
            message = json.loads(params.get("message", ""))
        except json.JSONDecodeError:
            return _error(400, 100, "(#100) param recipient must be JSON", "OAuthException")
        psid = recipient.get("id") if isinstance(recipient, dict) else None
        text = message.get("text") if isinstance(message, dict) else None
        kind = params.get("messaging_type", "")
        if not isinstance(psid, str) or not psid:
            return _error(400, 100, "(#100) The parameter recipient is required", "OAuthException")
        if kind not in {"RESPONSE", "UPDATE", "MESSAGE_TAG"}:
            return _error(
                400,
                100,
                "(#100) Param messaging_type must be one of {RESPONSE, UPDATE, MESSAGE_TAG}",
                "OAuthException",
            )
        if not isinstance(text, str) or not text:
            return _error(400, 100, "(#100) Must send either message or sender action", "OAuthException")
        if len(text) > _MESSENGER_MAX_TEXT:
            message = (
                f"(#100) Length of param message[text] must be less than or equal to {_MESSENGER_MAX_TEXT}"
            )
            return _error(400, 100, message, "OAuthException")
        with self._cond:
            if psid in self._closed_windows:
                return _error(
                    400,
                    10,
                    "(#10) This message is sent outside of allowed window. Learn more about the new "
                    "policy here: https://developers.facebook.com/docs/messenger-platform/policy-overview",
                    "OAuthException",
                    subcode=2018278,
                )
            mid = f"m_{secrets.token_urlsafe(24)}"
            self.messages.append(
                {"psid": psid, "text": text, "messaging_type": kind, "mid": mid, "version": version}
            )
            self._cond.notify_all()
        return JSONResponse({"recipient_id": psid, "message_id": mid})


async def _params(request: Request) -> dict[str, str]:
    """Query parameters plus a form-encoded body (what requests sends for facebook-sdk's POSTs)."""
    params = dict(request.query_params)
    body = await request.body()
    if body:
        params.update(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
    return params


def _missing(object_id: str) -> Response:
    message = (
        f"Unsupported post request. Object with ID '{object_id}' does not exist, cannot be loaded due to "
        "missing permissions, or does not support this operation. Please read the Graph API documentation "
        "at https://developers.facebook.com/docs/graph-api"
    )
    return _error(400, 100, message, "GraphMethodException", subcode=33)


def _error(
    status: int,
    code: int,
    message: str,
    kind: str,
    *,
    subcode: int | None = None,
    transient: bool = False,
    headers: dict[str, str] | None = None,
) -> Response:
    """Graph's error body; 190 also gets the `WWW-Authenticate` header Graph sends."""
    error: dict[str, Any] = {"message": message, "type": kind, "code": code}
    if subcode is not None:
        error["error_subcode"] = subcode
    if transient:
        error["is_transient"] = True
    error["fbtrace_id"] = "A" + secrets.token_urlsafe(16)
    extra = dict(headers or {})
    if code == 190:
        extra["www-authenticate"] = f'OAuth "Facebook Platform" "invalid_token" "{message[:60]}"'
    return JSONResponse({"error": error}, status_code=status, headers=extra)
