"""WordPress publisher: one post per incident through the REST API, edited at each update.

Authentication is Basic with a WordPress application password (Users → Profile → Application
Passwords, WordPress ≥ 5.6). Each update is a `<section class="incident-update" data-update="KEY">`;
a follow-up reads the post's raw content (`context=edit`) and puts its section on top.
https://developer.wordpress.org/rest-api/reference/posts/
"""

from __future__ import annotations

import html
import re
from datetime import UTC
from typing import TYPE_CHECKING, Any

import httpx

from channels.base import (
    CheckResult,
    DeliveryError,
    RateLimited,
    Rejected,
    Unauthorized,
    Unavailable,
)
from channels.blog.markup import without_shortcodes
from channels.blog.settings import BlogSettings
from channels.retry_hint import retry_after_seconds

if TYPE_CHECKING:
    from channels.blog.entry import BlogEntry

__all__ = ["WordPressPublisher", "insert_section", "section_html"]

_SECTION_START = '<section class="incident-update"'
_HEADING_TAG = re.compile(r"<(/?)h([1-5])(?=[\s>])", re.I)
_MAX_REASON = 300
# Statuses a retried first update may have left its post in (found again instead of duplicated).
_ANY_STATUS = "publish,future,draft,pending,private"


class _PostGone(Exception):
    """The post a follow-up continues was deleted (404) or trashed: start a new one."""


def section_html(entry: BlogEntry) -> str:
    """This update's section: heading with time and status, then its HTML (headings one level down).

    Square brackets become references: WordPress would run `[shortcode]` text as a shortcode.
    """
    body = _HEADING_TAG.sub(lambda m: f"<{m.group(1)}h{int(m.group(2)) + 1}", entry.html)
    published = entry.published_at.astimezone(UTC).isoformat(timespec="seconds")
    heading = html.escape(entry.heading, quote=False)
    return without_shortcodes(
        f'{_SECTION_START} data-update="{html.escape(entry.marker)}" data-published="{published}">\n'
        f"<h2>{heading}</h2>\n{body}\n</section>"
    )


def _post_title(entry: BlogEntry) -> str:
    """The title as WordPress stores it: HTML (themes print it unescaped), so `<`, `>`, `&` escaped."""
    return html.escape(entry.title, quote=False)


def insert_section(content: str, section: str) -> str:
    """Put `section` above the newest section of `content` (anything before it stays on top)."""
    at = content.find(_SECTION_START)
    if at < 0:
        return f"{section}\n\n{content.strip()}".strip() + "\n"
    return f"{content[:at]}{section}\n\n{content[at:]}"


class WordPressPublisher:
    """Posts to `{wordpress_url}/wp-json/wp/v2`; the client is built on first use (no I/O before)."""

    def __init__(self, settings: BlogSettings) -> None:
        self._settings = settings
        self._url = settings.wordpress_url.strip().rstrip("/")
        self._user = settings.wordpress_user.strip()
        secret = settings.wordpress_app_password
        self._password = secret.get_secret_value().strip() if secret is not None else ""
        self._client: httpx.AsyncClient | None = None

    def __repr__(self) -> str:
        state = "set" if self._password else "unset"
        return f"WordPressPublisher(url={self._url!r}, user={self._user!r}, app_password=<{state}>)"

    def _http(self) -> httpx.AsyncClient:
        if not self._url:
            raise Unauthorized("no WordPress site configured: set channels.blog.wordpress_url")
        if not self._user or not self._password:
            raise Unauthorized(
                "no WordPress user or application password: set channels.blog.wordpress_user "
                "and channels.blog.wordpress_app_password"
            )
        if self._client is None or self._client.is_closed:
            self._client = httpx.AsyncClient(
                base_url=f"{self._url}/wp-json/wp/v2",
                auth=httpx.BasicAuth(self._user, self._password),
                timeout=self._settings.timeout_seconds,
                headers={"Accept": "application/json", "User-Agent": "crisis-broadcaster"},
            )
        return self._client

    async def publish(self, entry: BlogEntry, thread_ref: str) -> str:
        """Put `entry` on top of post `thread_ref`, or create the incident's post; return its id."""
        section = section_html(entry)
        if thread_ref.isdigit():
            try:
                post = await self._call("GET", f"/posts/{thread_ref}", params={"context": "edit"}, post=True)
                if post.get("status") == "trash":
                    raise _PostGone
                raw = _raw(post, "content")
                if f'data-update="{html.escape(entry.marker)}"' not in raw:  # else: a retry, already there
                    update = {"title": _post_title(entry), "content": insert_section(raw, section)}
                    await self._call("POST", f"/posts/{thread_ref}", json=update, post=True)
                return thread_ref
            except _PostGone:
                pass  # someone deleted the post: the incident starts a new one below
        found = await self._find(entry)
        if found:
            return found
        create = {
            "title": _post_title(entry),
            "content": section + "\n",
            "status": self._settings.wordpress_status,
        }
        created = await self._call("POST", "/posts", json=create)
        post_id = created.get("id")
        if not isinstance(post_id, int):
            raise Unavailable("WordPress created the post but its answer has no post id")
        return str(post_id)

    async def _find(self, entry: BlogEntry) -> str:
        """The post a previous attempt of this very update already created ("" if none)."""
        params = {"search": entry.marker, "status": _ANY_STATUS, "context": "edit", "per_page": "10"}
        posts = await self._call("GET", "/posts", params=params)
        needle = f'data-update="{html.escape(entry.marker)}"'
        for post in posts if isinstance(posts, list) else []:
            if isinstance(post, dict) and isinstance(post.get("id"), int) and needle in _raw(post, "content"):
                return str(post["id"])
        return ""

    async def check(self) -> CheckResult:
        """Ask who we are (`users/me`) and whether that user may publish posts."""
        fix_password = (
            "create an application password (WordPress: Users → Profile → Application Passwords) "
            "and set channels.blog.wordpress_user and channels.blog.wordpress_app_password; if they are "
            "right, the web server may be dropping the Authorization header"
        )
        try:
            me = await self._call("GET", "/users/me", params={"context": "edit"})
        except Unauthorized as exc:
            return CheckResult(False, exc.reason, fix=fix_password)
        except DeliveryError as exc:
            return CheckResult(False, exc.reason, fix="check channels.blog.wordpress_url and the network")
        name = str(me.get("name") or me.get("slug") or self._user)
        capabilities = me.get("capabilities")
        needed = "publish_posts" if self._settings.wordpress_status == "publish" else "edit_posts"
        if isinstance(capabilities, dict) and not capabilities.get(needed):
            return CheckResult(
                False,
                f"WordPress user {name} lacks the {needed} capability",
                fix="give this WordPress user the Author role (or Editor) in Users → All Users",
            )
        verb = "publish" if needed == "publish_posts" else "write drafts"
        return CheckResult(True, f"ok: WordPress user {name} can {verb}")

    async def aclose(self) -> None:
        """Close the connection pool; a later call opens a new one."""
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        json: dict[str, Any] | None = None,
        post: bool = False,
    ) -> Any:
        """One REST call; provider errors become the contract's; `post=True` maps 404 to `_PostGone`."""
        client = self._http()
        try:
            reply = await client.request(method, path, params=params, json=json)
        except httpx.TimeoutException:
            raise Unavailable(f"WordPress at {self._url} timed out") from None
        except httpx.HTTPError as exc:
            raise Unavailable(f"WordPress at {self._url} unreachable: {type(exc).__name__}") from None
        if reply.is_success:
            try:
                return reply.json()
            except ValueError:  # a cache or security plugin answering HTML
                raise Unavailable(f"WordPress at {self._url} did not answer JSON") from None
        raise self._error(reply, post=post)

    def _error(self, reply: httpx.Response, *, post: bool) -> Exception:
        """The contract's error for a refused call (`_PostGone` for a missing post when `post`)."""
        code, text = self._error_body(reply)
        status = reply.status_code
        if status == 401:
            return Unauthorized(
                f"WordPress refused the application password for user {self._user!r} ({code})"
            )
        if status == 403:  # authenticated, but the role lacks a capability (publish_posts…)
            return Unauthorized(f"WordPress user {self._user!r} is not allowed to do this ({code}): {text}")
        if status == 404 and post:
            return _PostGone()
        if status == 404:
            return Unauthorized(f"no WordPress REST API at {self._url}/wp-json ({code}): check wordpress_url")
        if status == 429:
            wait = retry_after_seconds(reply.headers.get("retry-after"))
            return RateLimited(f"WordPress rate limit: retry after {wait:g} s", retry_after=wait)
        if status >= 500:
            return Unavailable(f"WordPress error {status}: {text or code}")
        return Rejected(f"WordPress refused the post ({code}): {text}")

    def _error_body(self, reply: httpx.Response) -> tuple[str, str]:
        """WordPress errors are `{"code", "message", "data": {"status"}}`; scrubbed and bounded."""
        try:
            data = reply.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            return f"http_{reply.status_code}", ""
        message = html.unescape(str(data.get("message") or ""))
        return self._scrub(str(data.get("code") or "")), self._scrub(message)

    def _scrub(self, text: str) -> str:
        for secret in {self._password, self._password.replace(" ", "")} - {""}:
            text = text.replace(secret, "***")
        text = re.sub(r"<[^<>]*>", "", text)  # WordPress messages may hold HTML links
        return text if len(text) <= _MAX_REASON else text[: _MAX_REASON - 1] + "…"


def _raw(post: dict[str, Any], field: str) -> str:
    value = post.get(field)
    if isinstance(value, dict):
        raw = value.get("raw")
        if isinstance(raw, str):
            return raw
    raise Unavailable(f"WordPress did not return the raw {field} (is context=edit allowed?)")
