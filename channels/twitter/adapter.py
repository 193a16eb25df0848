"""X (Twitter): post threads through tweepy's AsyncClient (API v2, OAuth 1.0a), poll mentions and DMs.

A rendered message's parts become a thread of chained replies; the thread's last tweet is the
`provider_message_id`, so the next update of the incident continues the story. X is polled for
replies (no webhook): `poll_mentions` and `poll_dms` return inbox messages and a new cursor.
`reply` answers a customer where they wrote: under their tweet, or in their DMs.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import aiohttp
from tweepy.asynchronous import AsyncClient
from tweepy.errors import (
    BadRequest,
    Forbidden,
    HTTPException,
    NotFound,
    TooManyRequests,
    TwitterServerError,
)
from tweepy.errors import Unauthorized as TweepyUnauthorized

from broadcaster.message import RenderedMessage
from channels.base import (
    CheckResult,
    DeliveryError,
    DeploymentBudget,
    InboundMessage,
    RateLimited,
    Rejected,
    Reply,
    SendResult,
    Target,
    Unauthorized,
    Unavailable,
)
from channels.limits import split_x_thread
from channels.registry import CAPABILITIES
from channels.retry_hint import retry_after_seconds
from channels.twitter.inbound import (
    data_list,
    id_number,
    meta,
    newest_id,
    oldest_first,
    parse_cursor,
    parse_dm_events,
    parse_mentions,
)
from channels.twitter.settings import TwitterSettings
from channels.twitter.transport import PostBudget, Transport, api_endpoint, open_transport

__all__ = ["TwitterChannel", "parse_dm_events", "parse_mentions"]

log = logging.getLogger(__name__)

PUBLIC_ADDRESS = "timeline"
_MAX_REASON = 300
_PAGE_SIZE = 100  # X's maximum max_results for mentions and DM events
_MAX_PAGES = 10  # per poll: 1,000 new mentions or DMs between two polls is already a crisis
_MENTION_FIELDS = ["created_at", "conversation_id", "in_reply_to_user_id", "lang", "referenced_tweets"]
_DM_FIELDS = ["created_at", "sender_id", "dm_conversation_id", "text"]
_USER_FIELDS = ["username", "name"]
_CREDENTIALS_FIX = (
    "check channels.twitter.consumer_key, consumer_secret, access_token and access_token_secret "
    "(developer portal > your app > Keys and tokens)"
)
_WRITE_FIX = "give the app Read and write (and Direct Messages) permission, then regenerate the access token"
_ENROL_FIX = (
    "attach the app to a Project in the developer portal and use an access level (plan) that includes "
    "this endpoint (the Free level cannot read mentions or DMs)"
)
_MAX_ENROLMENT = 60
# Problem types X sends for an app whose permissions or plan do not allow the endpoint.
_PERMISSION_PROBLEMS = ("oauth1-permissions", "client-forbidden", "unsupported-authentication")


class TwitterChannel:
    """X API v2 channel (tweepy 4 AsyncClient over one aiohttp session).

    >>> channel = TwitterChannel(settings.channels.twitter)
    >>> await channel.send(rendered, Target("timeline", thread_ref=last_id), idempotency_key="42:twitter")
    """

    name = "twitter"
    capabilities = CAPABILITIES["twitter"]

    def __init__(self, settings: TwitterSettings, *, clock: Callable[[], float] = time.time) -> None:
        """No I/O. `clock` (epoch seconds) drives the posting budget and the 429 reset arithmetic.

        Raises `ValueError` when `api_base_url` is not a bare https:// URL.
        """
        api_endpoint(settings.api_base_url)  # refuse an unusable base URL now, not at the first send
        self._settings = settings
        self._clock = clock
        self._budget = PostBudget(settings.posts_per_window, settings.window_seconds, clock)
        self._shared: DeploymentBudget | None = None
        self._client: AsyncClient | None = None
        self._transport: Transport | None = None
        self._me: tuple[str, str] | None = None  # (user id, username) of the account
        keys = (
            settings.consumer_key,
            settings.consumer_secret,
            settings.access_token,
            settings.access_token_secret,
            settings.bearer_token,
        )
        self._keys = [k.get_secret_value().strip() if k is not None else "" for k in keys]

    @property
    def pacing_scope(self) -> str:
        """The account's budget, named by a digest of its access token (never the token)."""
        return "twitter:" + hashlib.sha256(self._keys[2].encode()).hexdigest()[:16]

    def share_pacing(self, pacing: DeploymentBudget) -> None:
        """Count posts against the deployment's budget: X's limit is per account, not per worker."""
        self._shared = pacing

    def __repr__(self) -> str:
        state = "set" if all(self._keys[:4]) else "unset"
        return f"TwitterChannel(api_base_url={self._settings.api_base_url!r}, credentials=<{state}>)"

    @property
    def session(self) -> aiohttp.ClientSession | None:
        """The one aiohttp session every request goes through (None before the first call)."""
        return self._transport.session if self._transport is not None else None

    def _get_client(self) -> AsyncClient:
        if not all(self._keys[:4]):
            raise Unauthorized(f"X credentials missing: {_CREDENTIALS_FIX}")
        if self._transport is None or self._transport.session.closed:
            self._transport = open_transport(self._settings)
            self._client = None
        if self._client is None:
            consumer_key, consumer_secret, access_token, access_secret, bearer = self._keys
            self._client = AsyncClient(
                bearer_token=bearer or None,
                consumer_key=consumer_key,
                consumer_secret=consumer_secret,
                access_token=access_token,
                access_token_secret=access_secret,
                return_type=dict,
                wait_on_rate_limit=False,
            )
            # Without a session tweepy opens (and closes) one per request: a TLS handshake each time.
            self._client.session = self._transport.session
        return self._client

    # ----- sending ---------------------------------------------------------------------------

    async def send(self, message: RenderedMessage, target: Target, *, idempotency_key: str) -> SendResult:
        """Post `message.parts` as a thread on the account's timeline (`target.address` "timeline").

        The first tweet replies to `target.thread_ref` when set. X has no idempotency key: if a
        later tweet fails, the error is raised and the ids already posted are lost to the caller
        (a retry posts the whole thread again).
        """
        if target.address.strip() not in (PUBLIC_ADDRESS, ""):
            raise Rejected(f"X posts only to the account timeline: target must be {PUBLIC_ADDRESS!r}")
        parts = [part for part in message.parts if part.strip()]
        if not parts:
            raise Rejected("nothing to send: the rendered X message has no parts")
        ids = await self._post_chain(parts, target.thread_ref.strip())
        return SendResult(provider_message_id=ids[-1], extra_ids=tuple(ids[:-1]))

    async def reply(self, message: RenderedMessage, to: Reply, *, idempotency_key: str) -> SendResult:
        """Answer a customer: under their tweet ("tweet:<id>") or by DM ("dm:<event id>").

        A DM goes to the user `to.conversation_key` (the sender, as `poll_dms` files it). Ids
        come back in the inbound form, "tweet:<id>" (the first reply) or "dm:<event id>".
        """
        kind, _, ref = to.in_reply_to.strip().partition(":")
        if kind not in ("tweet", "dm") or not ref.isdigit():
            raise Rejected(f"X cannot answer {to.in_reply_to!r}: expected 'tweet:<id>' or 'dm:<event id>'")
        text = message.text.strip()
        if not text:
            raise Rejected("nothing to send: the X answer is empty")
        if kind == "dm":
            sent = await self.send_dm(to.conversation_key, text)
            return SendResult(provider_message_id=f"dm:{sent.provider_message_id}")
        posted = await self.reply_to_tweet(ref, text)
        return SendResult(
            provider_message_id=f"tweet:{posted.provider_message_id}",
            extra_ids=tuple(f"tweet:{tweet_id}" for tweet_id in posted.extra_ids),
        )

    async def reply_to_tweet(self, tweet_id: str, text: str) -> SendResult:
        """Answer a tweet publicly; a long text becomes a reply chain (1/n), first reply first.

        Counts against the posting budget. `extra_ids` are the chain's further replies, in order.
        """
        if not tweet_id.strip().isdigit():
            raise Rejected("X reply needs the numeric id of the tweet to answer")
        parts = split_x_thread(text, self.capabilities.max_body)
        ids = await self._post_chain(parts, tweet_id.strip())
        return SendResult(provider_message_id=ids[0], extra_ids=tuple(ids[1:]))

    async def send_dm(self, participant_id: str, text: str) -> SendResult:
        """Send a direct message to the user `participant_id`; the result is the DM event id."""
        if not participant_id.strip().isdigit():
            raise Rejected("X DM needs the numeric user id of the recipient")
        client = self._get_client()
        data = await self._call(
            "dm", client.create_direct_message, participant_id=participant_id.strip(), text=text
        )
        return SendResult(provider_message_id=_data_str(data, "dm_event_id"))

    async def _post_chain(self, parts: list[str], reply_to: str) -> list[str]:
        client = self._get_client()
        refund = await self._reserve_posts(len(parts))
        ids: list[str] = []
        try:
            for part in parts:
                data = await self._call(
                    "post",
                    client.create_tweet,
                    text=part,
                    in_reply_to_tweet_id=reply_to or None,
                    user_auth=True,
                )
                reply_to = _data_str(data, "id")
                ids.append(reply_to)
        finally:
            await refund(len(parts) - len(ids))
        return ids

    async def _reserve_posts(self, count: int) -> Callable[[int], Awaitable[None]]:
        """Take `count` posts from the budget (the deployment's when shared) or raise
        `RateLimited`; returns how to give back the ones not made."""
        shared = self._shared
        if shared is not None:
            limit, window = self._settings.posts_per_window, self._settings.window_seconds
            if count > limit:
                self._budget.reserve(count)  # raises Rejected: the thread can never fit
            scope = f"{self.pacing_scope}:posts"
            answer = await shared.take(scope, limit, window, count)
            if answer is not None:
                wait, reservation = answer
                if wait > 0:
                    raise RateLimited(
                        f"X posting budget used up ({limit} per {window:g} s): retry after {wait:.0f} s",
                        retry_after=max(wait, 1.0),
                    )

                async def give_back_shared(unused: int) -> None:
                    if unused > 0:
                        await shared.give_back(scope, reservation, unused)

                return give_back_shared
        stamp = self._budget.reserve(count)

        async def give_back(unused: int) -> None:
            self._budget.refund(stamp, unused)

        return give_back

    # ----- polling ---------------------------------------------------------------------------

    async def poll_mentions(self, since_id: str) -> tuple[list[InboundMessage], str]:
        """Mentions of the account newer than `since_id`, oldest first, and the next cursor.

        With `since_id` "" only the latest page (100) is read: no backfill of the whole history.
        A cursor that is not a numeric id raises `ValueError`.
        """
        since = parse_cursor(since_id)
        client = self._get_client()
        me_id, _ = await self._get_me()
        found: list[InboundMessage] = []
        cursor, token = since_id, None
        for _page in range(_MAX_PAGES):
            params: dict[str, Any] = {
                "expansions": ["author_id"],
                "tweet_fields": _MENTION_FIELDS,
                "user_fields": _USER_FIELDS,
                "max_results": _PAGE_SIZE,
                "since_id": since_id or None,
                "pagination_token": token,
            }
            payload = await self._call("read", client.get_users_mentions, id=me_id, user_auth=True, **params)
            found.extend(_parsed(parse_mentions, payload, me_id=me_id))
            cursor = newest_id(cursor, *(str(t.get("id", "")) for t in data_list(payload)))
            token = meta(payload).get("next_token")
            if not token or not since:
                break
        else:
            log.warning("X mentions: more than %d pages since %s; older ones skipped", _MAX_PAGES, since_id)
        return oldest_first(found, since), cursor

    async def poll_dms(self, since_id: str) -> tuple[list[InboundMessage], str]:
        """Direct messages received after event `since_id`, oldest first, and the next cursor.

        X's DM lookup has no `since_id`: pages (newest first) are read until an older event.
        Messages the account sent itself are skipped but move the cursor.
        """
        since = parse_cursor(since_id)
        client = self._get_client()
        me_id, _ = await self._get_me()
        found: list[InboundMessage] = []
        cursor, token = since_id, None
        for _page in range(_MAX_PAGES):
            params: dict[str, Any] = {
                "event_types": "MessageCreate",
                "dm_event_fields": _DM_FIELDS,
                "expansions": ["sender_id"],
                "user_fields": _USER_FIELDS,
                "max_results": _PAGE_SIZE,
                "pagination_token": token,
            }
            payload = await self._call("read", client.get_direct_message_events, user_auth=True, **params)
            ids = [str(event.get("id", "")) for event in data_list(payload)]
            found.extend(_parsed(parse_dm_events, payload, me_id=me_id))
            cursor = newest_id(cursor, *ids)
            token = meta(payload).get("next_token")
            reached_known = any(id_number(event_id) <= since for event_id in ids)
            if not token or not since or reached_known:
                break
        else:
            log.warning("X DMs: more than %d pages since %s; older ones skipped", _MAX_PAGES, since_id)
        return oldest_first(found, since), cursor

    def parse_inbound(self, body: bytes, headers: Mapping[str, str]) -> list[InboundMessage]:
        """X is polled, never pushed to us: always `[]` (see `poll_mentions`, `poll_dms`)."""
        return []

    # ----- health ----------------------------------------------------------------------------

    async def check(self) -> CheckResult:
        """Call GET /2/users/me with the user's OAuth keys: "ok: @handle", or what to fix."""
        try:
            _, username = await self._get_me(refresh=True)
        except Unauthorized as exc:
            if "ca_file" in exc.reason:
                fix = "point channels.twitter.ca_file at a readable PEM file, or empty it"
            else:
                fix = _WRITE_FIX if "permission" in exc.reason else _CREDENTIALS_FIX
                fix = _ENROL_FIX if "client-not-enrolled" in exc.reason else fix
            return CheckResult(False, exc.reason, fix=fix)
        except DeliveryError as exc:
            return CheckResult(
                False,
                f"X unreachable at {self._settings.api_base_url}: {exc.reason}",
                fix="check channels.twitter.api_base_url, ca_file and the network",
            )
        return CheckResult(True, f"ok: @{username}")

    async def _get_me(self, *, refresh: bool = False) -> tuple[str, str]:
        if self._me is None or refresh:
            client = self._get_client()
            data = await self._call("read", client.get_me, user_auth=True, user_fields=_USER_FIELDS)
            self._me = (_data_str(data, "id"), _data_str(data, "username"))
        return self._me

    async def aclose(self) -> None:
        """Close the session; the channel may be used again afterwards (a new session opens)."""
        transport, self._transport, self._client = self._transport, None, None
        if transport is not None:
            await transport.close()

    # ----- errors ----------------------------------------------------------------------------

    async def _call(
        self, action: str, method: Callable[..., Awaitable[Any]], **kwargs: Any
    ) -> dict[str, Any]:
        """Run one tweepy call; every failure becomes a `DeliveryError` without a cause.

        `from None`: tweepy's exceptions hold the response, whose request carries the OAuth header.
        """
        try:
            result = await method(**kwargs)
        except HTTPException as exc:
            raise await self._http_error(exc, action) from None
        except TimeoutError:
            raise Unavailable(f"X timed out after {self._settings.timeout_seconds:g} s") from None
        except aiohttp.ClientConnectorCertificateError:
            raise Unavailable("X's TLS certificate is not trusted: check channels.twitter.ca_file") from None
        except aiohttp.ClientResponseError as exc:  # an error page that is not X's JSON
            raise Unavailable(f"X answered HTTP {exc.status} without a JSON body") from None
        except aiohttp.ClientError as exc:
            raise Unavailable(f"X unreachable: {type(exc).__name__}") from None
        if not isinstance(result, dict):
            raise Unavailable("X answered something that is not a JSON object")
        return result

    async def _http_error(self, exc: HTTPException, action: str) -> DeliveryError:
        status = exc.response.status
        problem = await _problem(exc.response)
        detail = self._scrub("; ".join(str(m) for m in exc.api_messages) or f"HTTP {status}")
        if isinstance(exc, TooManyRequests):
            reset = exc.reset_time
            wait = retry_after_seconds(None if reset is None else max(1.0, reset - self._clock()))
            return RateLimited(f"X rate limit reached: retry after {wait:.0f} s", retry_after=wait)
        if isinstance(exc, TweepyUnauthorized):
            return Unauthorized(f"X refused the credentials: {_CREDENTIALS_FIX}")
        if isinstance(exc, Forbidden):
            return _forbidden(detail, problem, action)
        if isinstance(exc, BadRequest | NotFound):
            what = {"post": "the post", "dm": "the direct message"}.get(action, "the request")
            return Rejected(f"X refused {what}: {detail}")
        if isinstance(exc, TwitterServerError):
            return Unavailable(f"X server error {status}: {detail}")
        return Unavailable(f"X answered HTTP {status}: {detail}")

    def _scrub(self, text: str) -> str:
        for secret in self._keys:
            if len(secret) >= 4:
                text = text.replace(secret, "***")
        text = " ".join(text.split())
        return text if len(text) <= _MAX_REASON else text[: _MAX_REASON - 1] + "…"


def _forbidden(detail: str, problem: Mapping[str, Any], action: str) -> DeliveryError:
    lowered = detail.lower()
    kind = str(problem.get("type", ""))
    if problem.get("reason") == "client-not-enrolled":  # typed "client-forbidden", yet no permission fixes it
        needed = " ".join(str(problem.get("required_enrollment") or "").split())[:_MAX_ENROLMENT]
        needs = f", needs {needed}" if needed else ""
        return Unauthorized(f"X refused the app (client-not-enrolled{needs}): {_ENROL_FIX}")
    if any(kind.endswith(permission) for permission in _PERMISSION_PROBLEMS):
        scope = "Direct Message" if action == "dm" else "write" if action == "post" else "read"
        return Unauthorized(f"X app lacks {scope} permission: {_WRITE_FIX}")
    if "duplicate" in lowered:  # X v2 answers duplicates with 403 as often as with 400
        return Rejected(f"X refused the post: {detail}")
    if action == "dm":  # the recipient does not accept DMs from us
        return Rejected(f"X refused the direct message: {detail}")
    if action == "post" and "reply" in lowered:  # the author restricted who may reply
        return Rejected(f"X refused the reply: {detail}")
    if action == "post":
        return Unauthorized(f"X forbade the post ({detail}): check the app has write permission")
    return Unauthorized(f"X forbade the request: {detail}")


async def _problem(response: Any) -> dict[str, Any]:
    """X's error body (RFC 7807 problem), already read by tweepy; {} when it is not JSON."""
    try:
        body = await response.json(content_type=None)
    except (ValueError, aiohttp.ClientError):
        return {}
    return body if isinstance(body, dict) else {}


def _data_str(payload: Mapping[str, Any], key: str) -> str:
    data = payload.get("data")
    value = data.get(key) if isinstance(data, dict) else None
    if not isinstance(value, str) or not value:
        raise Unavailable(f"X answered without data.{key}")
    return value


def _parsed(
    parse: Callable[..., list[InboundMessage]], payload: Mapping[str, Any], *, me_id: str
) -> list[InboundMessage]:
    try:
        return parse(payload, me_id=me_id)
    except ValueError as exc:
        raise Unavailable(f"X sent an unexpected payload: {exc}") from None
