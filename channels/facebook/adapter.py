"""Facebook page: posts and comments through facebook-sdk's `GraphAPI`, Messenger replies, webhooks.

An incident's first update is a page post; later ones comment on that post (`follow_ups =
"comment"`) or are new posts (`"post"`). Answers to customers go where they wrote: under their
comment, or in Messenger. facebook-sdk 3.1.0 is synchronous `requests` and only knows Graph
v2.8-v3.1, so every call runs in a thread and the version is set after construction.
Graph errors: https://developers.facebook.com/docs/graph-api/guides/error-handling
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import facebook
import requests
from requests.adapters import HTTPAdapter
from requests.utils import should_bypass_proxies

from broadcaster.message import RenderedMessage
from channels.base import (
    CheckResult,
    DeliveryError,
    InboundMessage,
    RateLimited,
    Rejected,
    Reply,
    SendResult,
    Target,
    Unauthorized,
    Unavailable,
)
from channels.facebook.redaction import hide_access_token
from channels.facebook.settings import FacebookSettings
from channels.facebook.webhook import parse_events
from channels.limits import split_plain_text
from channels.registry import CAPABILITIES
from channels.retry_hint import DEFAULT_RETRY_AFTER, retry_after_seconds

__all__ = ["FacebookChannel"]

_T = TypeVar("_T")
_GRAPH_URL: str = facebook.FACEBOOK_GRAPH_URL  # "https://graph.facebook.com/", hard-coded in the sdk
_VERSION = re.compile(r"v?(\d+\.\d+)")
_MAX_REASON = 300
_AUTH_CODES = frozenset({102, 190})
_PERMISSION_CODES = frozenset({10, *range(200, 300)})
# 4 app, 17 user, 32 page, 613 custom limit, 80001-80014 business use case limits.
_RATE_CODES = frozenset({4, 17, 32, 613, *range(80001, 80015)})
_REJECT_CODES = frozenset({100, 368, 506, 551})
_OUTSIDE_WINDOW = (10, 2018278)
_MISSING_OBJECT = (100, 33)
# Send API: "message.text … has a 2000 character limit".
# https://developers.facebook.com/docs/messenger-platform/reference/send-api/
_MESSENGER_MAX_TEXT = 2000
_WINDOW_REASON = "Messenger: more than 24 h since the customer's last message; answer on the page instead"


class _GraphBaseAdapter(HTTPAdapter):
    """Sends the sdk's `https://graph.facebook.com/...` requests to `base_url` (a local peer in tests).

    It also remembers, per thread, the last response's status and headers: `GraphAPIError`
    carries neither, and they tell a 5xx from a 4xx and how long a rate limit lasts.
    """

    def __init__(self, base_url: str, pool_size: int) -> None:
        super().__init__(pool_connections=1, pool_maxsize=pool_size)
        self._base = base_url.rstrip("/") + "/"
        self.last = threading.local()

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: Any = None,
        verify: Any = True,
        cert: Any = None,
        proxies: dict[str, str] | None = None,
    ) -> requests.Response:
        self.last.status, self.last.headers = 0, {}
        url = request.url or ""
        if self._base != _GRAPH_URL and url.startswith(_GRAPH_URL):
            request.url = self._base + url[len(_GRAPH_URL) :]
            # The session chose proxies for graph.facebook.com; the real destination decides.
            if should_bypass_proxies(request.url, no_proxy=None):
                proxies = {}
        response = super().send(
            request, stream=stream, timeout=timeout, verify=verify, cert=cert, proxies=proxies
        )
        self.last.status, self.last.headers = response.status_code, dict(response.headers)
        return response


class FacebookChannel:
    """A Facebook page through the Graph API (facebook-sdk 3.1 with a current Graph version).

    >>> channel = FacebookChannel(settings.channels.facebook)
    >>> first = await channel.send(rendered, Target("page"), idempotency_key="42:facebook:page")
    >>> await channel.send(later, Target("page", thread_ref=first.provider_message_id), idempotency_key=k)
    """

    name = "facebook"
    capabilities = CAPABILITIES["facebook"]

    def __init__(self, settings: FacebookSettings) -> None:
        self._settings = settings
        token = settings.page_access_token
        self._token = token.get_secret_value().strip() if token is not None else ""
        self._graph: facebook.GraphAPI | None = None
        self._adapter: _GraphBaseAdapter | None = None

    def __repr__(self) -> str:
        s = self._settings
        state = "set" if self._token else "unset"
        return (
            f"FacebookChannel(page_id={s.page_id!r}, graph_base_url={s.graph_base_url!r}, "
            f"api_version={s.api_version!r}, follow_ups={s.follow_ups!r}, page_access_token=<{state}>)"
        )

    # ----- sending ---------------------------------------------------------------------------

    async def send(self, message: RenderedMessage, target: Target, *, idempotency_key: str) -> SendResult:
        """Publish on the page: a post, or a comment on `target.thread_ref` (the incident's post).

        The result is always the post id, so every later update comments on the first post. The
        Graph API has no idempotency key: a retried send after a lost response may post twice.
        """
        text = message.text.strip()
        if not text:
            raise Rejected("nothing to send: the rendered Facebook message is empty")
        post_id = target.thread_ref.strip()
        if post_id and self._settings.follow_ups == "comment":
            try:
                await self._call(lambda graph: graph.put_object(post_id, "comments", message=text))
            except _MissingObject:
                pass  # the post was deleted by a moderator: start again with a new post
            else:
                return SendResult(provider_message_id=post_id)
        page_id = self._settings.page_id.strip()
        if not page_id:
            raise Unauthorized("no Facebook page configured: set channels.facebook.page_id")
        created = await self._call(lambda graph: graph.put_object(page_id, "feed", message=text))
        return SendResult(provider_message_id=_id_of(created, "post"))

    async def reply(self, message: RenderedMessage, to: Reply, *, idempotency_key: str) -> SendResult:
        """Answer a customer: under their comment ("comment:<id>") or in Messenger ("mid:<mid>").

        Messenger answers go to the customer `to.conversation_key` (their page-scoped id). Ids
        come back in the inbound form: "comment:<new comment id>" or "mid:<message id>".
        """
        kind, _, ref = to.in_reply_to.strip().partition(":")
        if kind not in ("comment", "mid") or not ref:
            raise Rejected(
                f"Facebook cannot answer {to.in_reply_to!r}: expected 'comment:<id>' or 'mid:<message id>'"
            )
        text = message.text.strip()
        if kind == "comment":
            commented = await self.reply_to_comment(ref, text)
            return SendResult(provider_message_id=f"comment:{commented.provider_message_id}")
        sent = await self.send_messenger(to.conversation_key, text)
        return SendResult(
            provider_message_id=f"mid:{sent.provider_message_id}",
            extra_ids=tuple(f"mid:{mid}" for mid in sent.extra_ids),
        )

    async def reply_to_comment(self, comment_id: str, text: str) -> SendResult:
        """Answer a customer's comment in its thread, as the page; returns the new comment's id."""
        if not comment_id.strip() or not text.strip():
            raise Rejected("a Facebook reply needs a comment id and a text")
        created = await self._call(
            lambda graph: graph.put_object(comment_id.strip(), "comments", message=text)
        )
        return SendResult(provider_message_id=_id_of(created, "comment"))

    async def send_messenger(self, psid: str, text: str) -> SendResult:
        """Answer a Messenger conversation (Send API, `messaging_type=RESPONSE`); returns the mid.

        A text over 2000 characters goes as several messages, in order (`extra_ids`); if a later
        one fails the error is raised and a retry sends them all again. Meta only allows a
        standard reply within 24 h of the customer's last message.
        """
        if not psid.strip().isdecimal() or not text.strip():  # page-scoped ids are numeric
            raise Rejected("a Messenger reply needs the customer's numeric page-scoped id and a text")
        page_id = self._settings.page_id.strip()
        if not page_id:
            raise Unauthorized("no Facebook page configured: set channels.facebook.page_id")
        mids = [
            await self._send_messenger_part(page_id, psid.strip(), part)
            for part in split_plain_text(text, _MESSENGER_MAX_TEXT)
        ]
        return SendResult(provider_message_id=mids[0], extra_ids=tuple(mids[1:]))

    async def _send_messenger_part(self, page_id: str, psid: str, text: str) -> str:
        # The Graph API reads form fields and JSON-decodes the structured ones.
        fields = {
            "recipient": json.dumps({"id": psid}),
            "messaging_type": "RESPONSE",
            "message": json.dumps({"text": text}, ensure_ascii=False),
        }
        sent = await self._call(
            lambda graph: graph.request(f"{graph.version}/{page_id}/messages", post_args=dict(fields))
        )
        if not isinstance(sent, dict) or not isinstance(sent.get("message_id"), str):
            raise Unavailable("the Send API answered without a message_id")
        return str(sent["message_id"])

    # ----- inbound and health ----------------------------------------------------------------

    def parse_inbound(self, body: bytes, headers: Mapping[str, str]) -> list[InboundMessage]:
        """Parse a webhook body already checked with `signature_is_valid` (the web route's job)."""
        return parse_events(body, page_id=self._settings.page_id.strip())

    async def check(self) -> CheckResult:
        """Read the page with its token: "ok: page <name>", or what is wrong and how to fix it."""
        page_id = self._settings.page_id.strip()
        if not page_id or not self._token:
            return CheckResult(
                False,
                "Facebook page id or page access token missing",
                fix='set channels.facebook.page_id and page_access_token = "env:FACEBOOK_PAGE_TOKEN"',
            )
        try:
            page = await self._call(lambda graph: graph.get_object(page_id, fields="name,id"))
        except Unauthorized as exc:
            return CheckResult(
                False,
                exc.reason,
                fix="generate a long-lived page access token (pages_manage_posts, pages_messaging) "
                "in Meta's Graph API Explorer and set channels.facebook.page_access_token",
            )
        except DeliveryError as exc:
            return CheckResult(
                False,
                f"Graph API at {self._settings.graph_base_url}: {exc.reason}",
                fix="check channels.facebook.page_id, graph_base_url and the network",
            )
        name = page.get("name") if isinstance(page, dict) else None
        if not isinstance(name, str):
            return CheckResult(False, f"Graph API returned no page for id {page_id}", fix="check page_id")
        return CheckResult(True, f"ok: page {name}")

    async def aclose(self) -> None:
        """Close the HTTP connection pool; the channel may be used again afterwards."""
        graph, self._graph, self._adapter = self._graph, None, None
        if graph is not None:
            await asyncio.to_thread(graph.session.close)

    # ----- transport -------------------------------------------------------------------------

    def _get_graph(self) -> tuple[facebook.GraphAPI, _GraphBaseAdapter]:
        """The GraphAPI and its adapter, built on first use (no I/O)."""
        if self._graph is None or self._adapter is None:
            if not self._token:
                raise Unauthorized(
                    "no Facebook page token configured: set channels.facebook.page_access_token"
                )
            match = _VERSION.fullmatch(self._settings.api_version.strip())
            if match is None:
                raise Unauthorized('channels.facebook.api_version must look like "v21.0"')
            adapter = _GraphBaseAdapter(self._settings.graph_base_url, pool_size=16)
            session = requests.Session()
            session.mount(_GRAPH_URL, adapter)
            graph = facebook.GraphAPI(
                access_token=self._token, timeout=self._settings.timeout_seconds, session=session
            )
            # The sdk validates versions against a 2018 whitelist (2.8-3.1) only in __init__,
            # and builds every URL as FACEBOOK_GRAPH_URL + version + "/" + path.
            graph.version = f"v{match.group(1)}"
            self._graph, self._adapter = graph, adapter
        return self._graph, self._adapter

    async def _call(self, action: Callable[[facebook.GraphAPI], _T]) -> _T:
        """Run one sdk call in a thread and turn its failures into the contract's errors."""
        graph, adapter = self._get_graph()

        def run() -> _T:
            try:
                return action(graph)
            except facebook.GraphAPIError as exc:
                # Read the adapter's per-thread record here, in the thread that made the call.
                raise self._graph_error(exc, adapter.last) from None
            except requests.Timeout:
                raise Unavailable("the Graph API timed out") from None
            except requests.RequestException as exc:
                raise Unavailable(f"the Graph API is unreachable: {type(exc).__name__}") from None
            except (KeyError, ValueError):  # no content type, or a body that is not JSON
                raise Unavailable(
                    f"the Graph API answered HTTP {getattr(adapter.last, 'status', 0)}"
                ) from None

        return await asyncio.to_thread(run)

    def _scrub(self, text: str) -> str:
        if self._token:
            text = text.replace(self._token, "***")
        text = hide_access_token(text)
        return text if len(text) <= _MAX_REASON else text[: _MAX_REASON - 1] + "…"

    def _graph_error(self, exc: facebook.GraphAPIError, last: threading.local) -> DeliveryError:
        status: int = getattr(last, "status", 0)
        headers: dict[str, str] = getattr(last, "headers", {})
        error = exc.result.get("error") if isinstance(exc.result, dict) else None
        error = error if isinstance(error, dict) else {}
        code = exc.code if isinstance(exc.code, int) else -1
        subcode = error.get("error_subcode")
        detail = self._scrub(str(exc.message) if isinstance(exc.message, str) else "unreadable error")
        if code in _AUTH_CODES:
            return Unauthorized(f"the page token expired or is invalid: {detail}")
        if (code, subcode) == _OUTSIDE_WINDOW:
            return Rejected(_WINDOW_REASON)
        if (code, subcode) == _MISSING_OBJECT:
            return _MissingObject(f"Facebook object not found: {detail}")
        if code in _RATE_CODES:
            wait = _retry_after(headers)
            return RateLimited(f"Graph API rate limit (#{code}): retry after {wait:g} s", retry_after=wait)
        if code in _PERMISSION_CODES:
            return Unauthorized(f"the page token lacks a permission: {detail}")
        if code in _REJECT_CODES:
            return Rejected(f"Facebook refused it: {detail}")
        if code in (1, 2) or status >= 500 or error.get("is_transient") or code == -1:
            return Unavailable(f"the Graph API failed (HTTP {status}): {detail}")
        return Unavailable(f"Graph API error #{code}: {detail}")


class _MissingObject(Rejected):
    """The post or comment no longer exists (deleted, or hidden from the page token)."""


def _id_of(created: object, what: str) -> str:
    value = created.get("id") if isinstance(created, dict) else None
    if not isinstance(value, str) or not value:
        raise Unavailable(f"the Graph API created a {what} but returned no id")
    return value


def _retry_after(headers: Mapping[str, str]) -> float:
    """Seconds until Meta lifts the limit, from its usage headers; 60 s when it does not say.

    `X-Business-Use-Case-Usage: {"<id>": [{"type": "pages", "estimated_time_to_regain_access": 5}]}`
    (minutes). https://developers.facebook.com/docs/graph-api/overview/rate-limiting
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    wait = 0.0
    for name in ("x-business-use-case-usage", "x-page-usage", "x-ad-account-usage"):
        try:
            usage = json.loads(lowered.get(name, "{}"))
        except json.JSONDecodeError:
            continue
        for item in _usage_items(usage):
            value = item.get("estimated_time_to_regain_access")
            if isinstance(value, int | float) and not isinstance(value, bool):
                wait = max(wait, retry_after_seconds(value * 60, default=0.0))
    return wait or DEFAULT_RETRY_AFTER


def _usage_items(usage: object) -> list[dict[str, Any]]:
    if isinstance(usage, dict) and "estimated_time_to_regain_access" in usage:
        return [usage]
    if not isinstance(usage, dict):
        return []
    items: list[dict[str, Any]] = []
    for value in usage.values():
        if isinstance(value, list):
            items.extend(v for v in value if isinstance(v, dict))
    return items
