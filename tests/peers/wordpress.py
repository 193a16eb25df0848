"""A fake WordPress REST API (wp/v2 posts and users/me) over real HTTP, in its own thread.

It enforces Basic auth with an application password (spaces ignored, as WordPress does), answers
with the real response and error shapes, and injects faults: 429, a site down (502), a deleted or
trashed post, an arbitrary refusal.

>>> with WordPressPeer() as peer:
...     settings = BlogSettings(publisher="wordpress", wordpress_url=peer.base_url, ...)
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
from datetime import UTC, datetime
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.peers.http_server import ServedPeer, ServerThread

__all__ = ["WordPressPeer"]

_BAD_GATEWAY = b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>nginx</body>\r\n</html>\r\n"
_STATUSES = frozenset({"publish", "future", "draft", "pending", "private"})


class WordPressPeer(ServedPeer):
    """WordPress on 127.0.0.1; give `peer.base_url` to `BlogSettings.wordpress_url`.

    Faults: `rate_limit_next(n)`, `down`, `delete(post_id)`, `trash(post_id)`, `fail_next(...)`,
    `can_publish`. Records: `posts` (id → stored post), `calls` (method, path).
    """

    def __init__(self, user: str = "comms", app_password: str = "abcd EFGH 1234 ijkl MNOP 5678") -> None:
        self.user = user
        self.app_password = app_password
        self.can_publish = True
        self.down = False
        self.posts: dict[int, dict[str, Any]] = {}
        self.calls: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._next_id = 100
        self._rate_limited = 0
        self._retry_after = "7"
        self._failures: list[tuple[int, str, str]] = []
        app = Starlette(
            routes=[
                Route("/wp-json/wp/v2/posts", self._posts, methods=["GET", "POST"]),
                Route("/wp-json/wp/v2/posts/{post_id:int}", self._post, methods=["GET", "POST", "PUT"]),
                Route("/wp-json/wp/v2/users/me", self._me, methods=["GET"]),
            ]
        )
        self._server = ServerThread(app, "wordpress-peer")
        self.port = self._server.port
        self.base_url = self._server.origin

    # ----- faults and records ----------------------------------------------------------------

    def reset(self) -> None:
        """Forget posts, records and faults (a peer shared by several tests)."""
        with self._lock:
            self.can_publish = True
            self.down = False
            self.posts.clear()
            self.calls.clear()
            self._rate_limited = 0
            self._failures.clear()

    def rate_limit_next(self, n: int, retry_after: str = "7") -> None:
        """Answer the next `n` calls with 429 and this Retry-After (a security plugin or the host)."""
        with self._lock:
            self._rate_limited = n
            self._retry_after = retry_after

    def fail_next(self, status: int, code: str, message: str) -> None:
        """Answer the next call with this WordPress error."""
        with self._lock:
            self._failures.append((status, code, message))

    def delete(self, post_id: int | str) -> None:
        """Delete a post for good (`?force=true`): later calls on it get 404."""
        with self._lock:
            self.posts.pop(int(post_id), None)

    def trash(self, post_id: int | str) -> None:
        """Move a post to the trash, as the admin's "Trash" link does."""
        with self._lock:
            self.posts[int(post_id)]["status"] = "trash"

    def creates(self) -> int:
        """How many posts were created."""
        with self._lock:
            return sum(1 for method, path in self.calls if (method, path) == ("POST", "/wp-json/wp/v2/posts"))

    # ----- HTTP ------------------------------------------------------------------------------

    async def _guard(self, request: Request) -> Response | None:
        """Record the call, then apply faults and authentication; None lets it through."""
        with self._lock:
            self.calls.append((request.method, request.url.path))
            if self.down:
                return Response(_BAD_GATEWAY, status_code=502, media_type="text/html")
            if self._rate_limited > 0:
                self._rate_limited -= 1
                body = {
                    "code": "rest_too_many_requests",
                    "message": "Too many requests.",
                    "data": {"status": 429},
                }
                return JSONResponse(body, status_code=429, headers={"Retry-After": self._retry_after})
            if self._failures:
                status, code, message = self._failures.pop(0)
                return _error(status, code, message)
        return self._authenticate(request.headers.get("authorization", ""))

    def _authenticate(self, header: str) -> Response | None:
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            return None  # anonymous: each route decides (reads of published posts are public)
        try:
            user, _, password = base64.b64decode(encoded, validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return _error(401, "invalid_username", "Unknown username. Check again or try your email address.")
        if user != self.user:
            return _error(401, "invalid_username", "Unknown username. Check again or try your email address.")
        # wp_authenticate_application_password() strips every non-alphanumeric character.
        if "".join(c for c in password if c.isalnum()) != "".join(
            c for c in self.app_password if c.isalnum()
        ):
            return _error(
                401, "incorrect_password", "The provided password is an invalid application password."
            )
        return None

    @staticmethod
    def _logged_in(request: Request) -> bool:
        return request.headers.get("authorization", "").lower().startswith("basic ")

    async def _posts(self, request: Request) -> Response:
        refused = await self._guard(request)
        if refused is not None:
            return refused
        edit = request.query_params.get("context") == "edit"
        if request.method == "GET":
            if edit and not self._logged_in(request):
                return _error(
                    401,
                    "rest_forbidden_context",
                    "Sorry, you are not allowed to edit posts in this post type.",
                )
            statuses = set(request.query_params.get("status", "publish").split(","))
            if statuses - {"publish"} and not self._logged_in(request):
                return _error(400, "rest_invalid_param", "Invalid parameter(s): status")
            search = request.query_params.get("search", "").lower()
            per_page = int(request.query_params.get("per_page", "10"))
            with self._lock:
                found = [
                    _shape(post, edit)
                    for post in sorted(self.posts.values(), key=lambda p: p["id"], reverse=True)
                    if post["status"] in statuses
                    and (search in post["title"].lower() or search in post["content"].lower())
                ]
            return JSONResponse(found[:per_page], headers={"X-WP-Total": str(len(found))})
        if not self._logged_in(request):
            return _error(
                401, "rest_cannot_create", "Sorry, you are not allowed to create posts as this user."
            )
        data = await _json(request)
        if data is None:
            return _error(400, "rest_invalid_json", "Invalid JSON body passed.")
        status = data.get("status", "draft")
        if status not in _STATUSES:
            return _error(400, "rest_invalid_param", "Invalid parameter(s): status")
        if status == "publish" and not self.can_publish:
            return _error(
                403, "rest_cannot_publish", "Sorry, you are not allowed to publish posts in this post type."
            )
        if not data.get("title") and not data.get("content"):
            return _error(400, "empty_content", "Content, title, and excerpt are empty.")
        now = datetime.now(UTC).replace(microsecond=0, tzinfo=None).isoformat()
        with self._lock:
            post_id = self._next_id
            self._next_id += 1
            post = {
                "id": post_id,
                "date": now,
                "modified": now,
                "status": status,
                "title": str(data.get("title", "")),
                "content": str(data.get("content", "")),
                "link": f"{self.base_url}/?p={post_id}",
            }
            self.posts[post_id] = post
            shaped = _shape(post, edit=True)
        return JSONResponse(
            shaped, status_code=201, headers={"Location": f"{self.base_url}/wp-json/wp/v2/posts/{post_id}"}
        )

    async def _post(self, request: Request) -> Response:
        refused = await self._guard(request)
        if refused is not None:
            return refused
        post_id = request.path_params["post_id"]
        edit = request.query_params.get("context") == "edit"
        with self._lock:
            post = self.posts.get(post_id)
        if post is None:
            return _error(404, "rest_post_invalid_id", "Invalid post ID.")
        if request.method == "GET":
            if (edit or post["status"] != "publish") and not self._logged_in(request):
                return _error(401, "rest_forbidden_context", "Sorry, you are not allowed to edit this post.")
            with self._lock:
                return JSONResponse(_shape(post, edit))
        if not self._logged_in(request):
            return _error(401, "rest_cannot_edit", "Sorry, you are not allowed to edit this post.")
        data = await _json(request)
        if data is None:
            return _error(400, "rest_invalid_json", "Invalid JSON body passed.")
        with self._lock:
            for key in ("title", "content", "status"):
                if key in data:
                    post[key] = str(data[key])
            post["modified"] = datetime.now(UTC).replace(microsecond=0, tzinfo=None).isoformat()
            return JSONResponse(_shape(post, edit=True))

    async def _me(self, request: Request) -> Response:
        refused = await self._guard(request)
        if refused is not None:
            return refused
        if not self._logged_in(request):
            return _error(401, "rest_not_logged_in", "You are not currently logged in.")
        role = "author" if self.can_publish else "contributor"
        body: dict[str, Any] = {
            "id": 2,
            "name": "Équipe Communication",
            "slug": self.user,
            "link": f"{self.base_url}/author/{self.user}/",
            "roles": [role],
        }
        if request.query_params.get("context") == "edit":
            body["username"] = self.user
            body["capabilities"] = {
                "read": True,
                "edit_posts": True,
                "publish_posts": self.can_publish,
                role: True,
            }
        return JSONResponse(body)


def _shape(post: dict[str, Any], edit: bool) -> dict[str, Any]:
    """A post as WordPress returns it; `raw` fields only in the edit context."""
    title: dict[str, Any] = {"rendered": post["title"]}
    content: dict[str, Any] = {"rendered": post["content"], "protected": False}
    if edit:
        title["raw"] = post["title"]
        content["raw"] = post["content"]
        content["block_version"] = 0
    return {
        "id": post["id"],
        "date": post["date"],
        "date_gmt": post["date"],
        "modified": post["modified"],
        "modified_gmt": post["modified"],
        "slug": f"incident-{post['id']}",
        "status": post["status"],
        "type": "post",
        "link": post["link"],
        "title": title,
        "content": content,
        "author": 2,
        "format": "standard",
        "tags": [],
    }


async def _json(request: Request) -> dict[str, Any] | None:
    try:
        data = json.loads(await request.body() or b"{}")
    except json.JSONDecodeError:
        return None
    return data if isinstance(data, dict) else None


def _error(status: int, code: str, message: str) -> Response:
    return JSONResponse({"code": code, "message": message, "data": {"status": status}}, status_code=status)
