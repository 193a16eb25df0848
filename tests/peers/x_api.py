"""A fake X API v2 over real HTTPS (Starlette + uvicorn in its own thread, a trustme certificate).

The certificate names api.twitter.com (tweepy's hard-coded host): a client resolves that name to
`peer.base_url`'s port and trusts `peer.ca_file`. Requests must carry OAuth 1.0a user-context
headers signed with the configured keys (HMAC-SHA1 checked with oauthlib). Answers use X's real
shapes, errors its RFC 7807 problems; faults: 429 with reset headers, a read-only app, duplicates.

>>> with XApiPeer() as peer:
...     settings = TwitterSettings(api_base_url=peer.base_url, ca_file=peer.ca_file, **peer.credentials)
"""

from __future__ import annotations

import itertools
import json
import shutil
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import trustme
from oauthlib.oauth1.rfc5849 import signature as oauth_signature
from oauthlib.oauth1.rfc5849.utils import parse_authorization_header, unescape
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.peers.http_server import ServedPeer, ServerThread

__all__ = ["XApiPeer"]

_FIRST_ID = 2_121_588_456_944_567_049  # snowflake-sized ids (Nov 2026), increasing like X's
_FIRST_USER_ID = 1_452_183_629_364_871_170
_TWEET_DEFAULT_FIELDS = ("id", "text", "edit_history_tweet_ids")
_USER_DEFAULT_FIELDS = ("id", "name", "username")
_DM_DEFAULT_FIELDS = ("id", "event_type", "text")
_PERMISSIONS_PROBLEM = {
    "title": "Forbidden",
    "detail": (
        "Your client app is not configured with the appropriate oauth1 app permissions for this endpoint."
    ),
    "type": "https://api.twitter.com/2/problems/oauth1-permissions",
    "status": 403,
}
# What X answers an app outside a Project, or on a plan without the endpoint (GET mentions on Free).
_NOT_ENROLLED_PROBLEM = {
    "client_id": "27316216",
    "detail": (
        "When authenticating requests to the Twitter API v2 endpoints, you must use keys and tokens from "
        "a Twitter developer App that is attached to a Project. You can create a project via the "
        "developer portal."
    ),
    "registration_url": "https://developer.twitter.com/en/docs/projects/overview",
    "title": "Client Forbidden",
    "required_enrollment": "Appropriate Level of API Access",
    "reason": "client-not-enrolled",
    "type": "https://api.twitter.com/2/problems/client-forbidden",
}


class XApiPeer(ServedPeer):
    """X API v2 on 127.0.0.1 over HTTPS; `peer.credentials` are the keys it accepts.

    Faults: `rate_limit_next(n, reset_in=…)`, `server_error_next(n)`, `forbid_writes`,
    `not_enrolled` (reads of mentions and DMs: 403 client-not-enrolled), `page_errors` (partial
    errors on every mentions page), `fail_duplicates` (`duplicate_status`), `page_size`.
    Records: `tweets`, `dms`, `requests`, `connections`, `wait_for(count, timeout)`.
    Seeds: `add_mention(...)`, `add_raw_mention(tweet)`, `add_dm(...)`.
    """

    def __init__(
        self,
        *,
        consumer_key: str = "ck-test-consumer",
        consumer_secret: str = "cs-test-consumer-secret",
        access_token: str = "1266712367203315712-Xq3attokentest",
        access_token_secret: str = "ats-test-token-secret",
        username: str = "maison_exemple",
        name: str = "Maison Exemple",
    ) -> None:
        self.credentials = {
            "consumer_key": consumer_key,
            "consumer_secret": consumer_secret,
            "access_token": access_token,
            "access_token_secret": access_token_secret,
        }
        self.me = {"id": access_token.partition("-")[0], "name": name, "username": username}
        self.forbid_writes = False
        self.not_enrolled = False
        self.page_errors: list[dict[str, Any]] = []
        self.fail_duplicates = False
        self.duplicate_status = 400  # X has answered duplicates with 400 and, lately, 403
        self.page_size = 100  # lower it to make the client paginate
        self.tweets: list[dict[str, Any]] = []  # what we posted: id, text, in_reply_to
        self.dms: list[dict[str, Any]] = []  # what we sent: id, participant_id, text, dm_conversation_id
        self.requests: list[tuple[str, str]] = []  # (method, path) of every request, in order
        self.connections: set[tuple[str, int]] = set()  # client (host, port): one per TCP connection
        self._cond = threading.Condition()
        self._ids = itertools.count(_FIRST_ID)
        self._user_ids = itertools.count(_FIRST_USER_ID)
        self._mentions: list[dict[str, Any]] = []  # full tweet objects, oldest first
        self._events: list[dict[str, Any]] = []  # full DM events, oldest first
        self._users: dict[str, dict[str, Any]] = {self.me["id"]: dict(self.me)}
        self._rate_limited = 0
        self._reset_at = 0
        self._server_errors = 0
        self._dir = Path(tempfile.mkdtemp(prefix="x-peer-"))
        authority = trustme.CA()
        leaf = authority.issue_cert("api.twitter.com")
        self.ca_file = str(self._dir / "ca.pem")
        authority.cert_pem.write_to_path(self.ca_file)
        leaf.private_key_pem.write_to_path(str(self._dir / "key.pem"))
        for index, pem in enumerate(leaf.cert_chain_pems):
            pem.write_to_path(str(self._dir / "cert.pem"), append=index > 0)
        routes = [
            Route("/2/tweets", self._guarded(self._create_tweet), methods=["POST"]),
            Route("/2/users/me", self._guarded(self._users_me), methods=["GET"]),
            Route("/2/users/{id}/mentions", self._guarded(self._mentions_page), methods=["GET"]),
            Route("/2/dm_events", self._guarded(self._dm_events_page), methods=["GET"]),
            Route(
                "/2/dm_conversations/with/{participant_id}/messages",
                self._guarded(self._send_dm),
                methods=["POST"],
            ),
        ]
        self._server = ServerThread(
            Starlette(routes=routes),
            "x-api-peer",
            ssl_certfile=str(self._dir / "cert.pem"),
            ssl_keyfile=str(self._dir / "key.pem"),
        )
        self.port = self._server.port
        self.base_url = self._server.origin

    # ----- lifecycle -------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask uvicorn to exit, wait for its thread (bounded), remove the certificate files."""
        super().stop()
        shutil.rmtree(self._dir, ignore_errors=True)

    # ----- faults, seeds and records ---------------------------------------------------------

    def reset(self) -> None:
        """Forget records, seeds and faults (a peer shared by several tests)."""
        with self._cond:
            self.forbid_writes = self.fail_duplicates = self.not_enrolled = False
            self.page_errors = []
            self.duplicate_status = 400
            self.page_size = 100
            for records in (self.tweets, self.dms, self.requests, self._mentions, self._events):
                records.clear()
            self.connections.clear()
            self._users = {self.me["id"]: dict(self.me)}
            self._rate_limited = self._server_errors = 0

    def rate_limit_next(self, n: int, *, reset_in: float = 60.0, reset_at: int | None = None) -> None:
        """Answer the next `n` requests with 429; the window resets at `reset_at` (epoch s)."""
        with self._cond:
            self._rate_limited = n
            self._reset_at = reset_at if reset_at is not None else int(time.time() + reset_in)

    def server_error_next(self, n: int) -> None:
        """Answer the next `n` requests with 503 (X's "Service Unavailable" problem)."""
        with self._cond:
            self._server_errors = n

    def wait_for(self, count: int, timeout: float) -> bool:
        """Wait until at least `count` tweets were posted; False after `timeout` seconds."""
        with self._cond:
            return self._cond.wait_for(lambda: len(self.tweets) >= count, timeout=timeout)

    def add_user(self, username: str, name: str = "") -> str:
        """Register a customer account (or find it by username); returns its id."""
        with self._cond:
            for user in self._users.values():
                if user["username"] == username:
                    return str(user["id"])
            user_id = str(next(self._user_ids))
            self._users[user_id] = {"id": user_id, "name": name or username, "username": username}
            return user_id

    def add_mention(
        self,
        text: str,
        *,
        username: str = "client_fr",
        name: str = "Camille Client",
        lang: str = "fr",
        in_reply_to: str = "",
        created_at: datetime | None = None,
    ) -> dict[str, Any]:
        """Seed a tweet mentioning us (replying to `in_reply_to` when set); returns the tweet."""
        author_id = self.add_user(username, name)
        with self._cond:
            tweet_id = str(next(self._ids))
            parent = next((t for t in self.tweets if t["id"] == in_reply_to), None)
            tweet: dict[str, Any] = {
                "id": tweet_id,
                "text": _x_escape(text),  # X v2 returns &, < and > escaped
                "edit_history_tweet_ids": [tweet_id],
                "author_id": author_id,
                "created_at": _iso(created_at or datetime.now(UTC)),
                "conversation_id": parent["conversation_id"] if parent else in_reply_to or tweet_id,
                "lang": lang,
            }
            if in_reply_to:
                tweet["in_reply_to_user_id"] = self.me["id"]
                tweet["referenced_tweets"] = [{"type": "replied_to", "id": in_reply_to}]
            self._mentions.append(tweet)
            return dict(tweet)

    def add_raw_mention(self, tweet: dict[str, Any]) -> dict[str, Any]:
        """Seed a mention exactly as given (a partial object), under the next tweet id."""
        with self._cond:
            seeded = {**tweet, "id": str(next(self._ids))}
            self._mentions.append(seeded)
            return dict(seeded)

    def add_dm(
        self, text: str, *, username: str = "client_fr", name: str = "Camille Client"
    ) -> dict[str, Any]:
        """Seed a direct message sent to us; returns the DM event."""
        sender_id = self.add_user(username, name)
        with self._cond:
            event = self._dm_event(sender_id, sender_id, text)
            return dict(event)

    def _dm_event(self, sender_id: str, other_id: str, text: str) -> dict[str, Any]:
        event_id = str(next(self._ids))
        low, high = sorted((self.me["id"], other_id), key=int)
        event = {
            "id": event_id,
            "event_type": "MessageCreate",
            "text": text,
            "sender_id": sender_id,
            "dm_conversation_id": f"{low}-{high}",
            "created_at": _iso(datetime.now(UTC)),
        }
        self._events.append(event)
        return event

    # ----- HTTP ------------------------------------------------------------------------------

    def _guarded(
        self, handler: Callable[[Request], Awaitable[Response]]
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            return await self._guard(request) or await handler(request)

        return endpoint

    async def _guard(self, request: Request) -> Response | None:
        """Record the request, then answer auth failures and injected faults."""
        client = request.scope.get("client") or ("", 0)
        with self._cond:
            self.requests.append((request.method, request.url.path))
            self.connections.add((str(client[0]), int(client[1])))
        if not self._authorised(request):
            return _problem(401, "Unauthorized", "Unauthorized")
        with self._cond:
            if self._rate_limited > 0:
                self._rate_limited -= 1
                headers = {
                    "x-rate-limit-limit": "100",
                    "x-rate-limit-remaining": "0",
                    "x-rate-limit-reset": str(self._reset_at),
                }
                return _problem(429, "Too Many Requests", "Too Many Requests", headers=headers)
            if self._server_errors > 0:
                self._server_errors -= 1
                return _problem(503, "Service Unavailable", "Service Unavailable")
        return None

    def _authorised(self, request: Request) -> bool:
        header = request.headers.get("authorization", "")
        try:
            oauth = {key: unescape(value) for key, value in parse_authorization_header(header)}
        except ValueError:
            return False
        if (
            oauth.get("oauth_consumer_key") != self.credentials["consumer_key"]
            or oauth.get("oauth_token") != self.credentials["access_token"]
            or oauth.get("oauth_signature_method") != "HMAC-SHA1"
            or not oauth.get("oauth_signature")
        ):
            return False
        # The client signed https://api.twitter.com/…: the Host header still names it.
        uri = f"https://{request.headers.get('host', '')}{request.url.path}"
        query = request.url.query
        params = oauth_signature.collect_parameters(uri_query=query, headers={"Authorization": header})
        signed = SimpleNamespace(
            uri=uri, http_method=request.method, params=params, signature=oauth["oauth_signature"]
        )
        return bool(
            oauth_signature.verify_hmac_sha1(
                signed, self.credentials["consumer_secret"], self.credentials["access_token_secret"]
            )
        )

    async def _create_tweet(self, request: Request) -> Response:
        if self.forbid_writes:
            return JSONResponse(_PERMISSIONS_PROBLEM, status_code=403)
        body = await _json_body(request)
        text = body.get("text") if body is not None else None
        if not isinstance(text, str) or not text:
            return _invalid("text", "Tweet text is empty or missing")
        reply = body.get("reply") if body is not None else None
        in_reply_to = str(reply.get("in_reply_to_tweet_id", "")) if isinstance(reply, dict) else ""
        if len(text) > 280:
            return _problem(400, "Bad Request", "Your Tweet text is too long.")
        with self._cond:
            if self.fail_duplicates and any(t["text"] == text for t in self.tweets):
                detail = "You are not allowed to create a Tweet with duplicate content."
                title = "Forbidden" if self.duplicate_status == 403 else "Bad Request"
                return _problem(self.duplicate_status, title, detail)
            known = {t["id"] for t in self.tweets} | {t["id"] for t in self._mentions}
            if in_reply_to and in_reply_to not in known:
                detail = "The Tweet you are replying to has been deleted or is not visible to you."
                return _problem(400, "Bad Request", detail)
            tweet_id = str(next(self._ids))
            parent = next((t for t in self.tweets if t["id"] == in_reply_to), None)
            conversation = parent["conversation_id"] if parent else in_reply_to or tweet_id
            self.tweets.append(
                {"id": tweet_id, "text": text, "in_reply_to": in_reply_to, "conversation_id": conversation}
            )
            self._cond.notify_all()
        data = {"id": tweet_id, "text": _x_escape(text), "edit_history_tweet_ids": [tweet_id]}
        return JSONResponse({"data": data}, status_code=201)

    async def _users_me(self, request: Request) -> Response:
        fields = _fields(request, "user.fields", _USER_DEFAULT_FIELDS)
        return JSONResponse({"data": _pick(self.me, fields)})

    async def _mentions_page(self, request: Request) -> Response:
        if self.not_enrolled:
            return JSONResponse(_NOT_ENROLLED_PROBLEM, status_code=403)
        if request.path_params["id"] != self.me["id"]:
            return _problem(403, "Forbidden", "You are not permitted to read this user's mentions.")
        max_results = int(request.query_params.get("max_results", "10"))
        if not 5 <= max_results <= 100:  # X: "max_results must be between 5 and 100"
            return _invalid(
                "max_results", f"The `max_results` query parameter value [{max_results}] is invalid"
            )
        since = int(request.query_params.get("since_id", "0") or 0)
        with self._cond:
            newest_first = [t for t in reversed(self._mentions) if int(t["id"]) > since]
        body = self._listing(
            request, newest_first, max_results, "tweet.fields", _TWEET_DEFAULT_FIELDS, "author_id"
        )
        if "data" in body:
            body["meta"].update(newest_id=body["data"][0]["id"], oldest_id=body["data"][-1]["id"])
        if self.page_errors:
            body["errors"] = list(self.page_errors)
        return JSONResponse(body)

    async def _dm_events_page(self, request: Request) -> Response:
        if self.not_enrolled:
            return JSONResponse(_NOT_ENROLLED_PROBLEM, status_code=403)
        kinds = _fields(request, "event_types", ())
        with self._cond:
            newest_first = [e for e in reversed(self._events) if not kinds or e["event_type"] in kinds]
        max_results = int(request.query_params.get("max_results", "100"))
        body = self._listing(
            request, newest_first, max_results, "dm_event.fields", _DM_DEFAULT_FIELDS, "sender_id"
        )
        return JSONResponse(body)

    def _listing(
        self,
        request: Request,
        newest_first: list[dict[str, Any]],
        max_results: int,
        fields_param: str,
        default_fields: tuple[str, ...],
        user_key: str,
    ) -> dict[str, Any]:
        """One page of `newest_first` in X's list shape: data, includes.users, meta."""
        size = min(max_results, self.page_size)
        page, next_token = _page(newest_first, request.query_params.get("pagination_token"), size)
        expanded = user_key in _fields(request, "expansions", ())
        fields = _fields(request, fields_param, default_fields) + ((user_key,) if expanded else ())
        body: dict[str, Any] = {"meta": {"result_count": len(page)}}
        if page:
            body["data"] = [_pick(item, fields) for item in page]
        if page and expanded:
            users = [item[user_key] for item in page if user_key in item]
            body["includes"] = {"users": self._included_users(request, users)}
        if next_token:
            body["meta"]["next_token"] = next_token
        return body

    async def _send_dm(self, request: Request) -> Response:
        if self.forbid_writes:
            return JSONResponse(_PERMISSIONS_PROBLEM, status_code=403)
        participant = request.path_params["participant_id"]
        body = await _json_body(request)
        text = body.get("text") if body is not None else None
        if not isinstance(text, str) or not text:
            return _invalid("text", "The DM text is empty or missing")
        with self._cond:
            if participant not in self._users:
                return _problem(400, "Bad Request", f"Could not find user with id: [{participant}].")
            event = self._dm_event(self.me["id"], participant, text)
            self.dms.append({**event, "participant_id": participant})
            self._cond.notify_all()
        data = {"dm_conversation_id": event["dm_conversation_id"], "dm_event_id": event["id"]}
        return JSONResponse({"data": data}, status_code=201)

    def _included_users(self, request: Request, ids: list[str]) -> list[dict[str, Any]]:
        fields = _fields(request, "user.fields", _USER_DEFAULT_FIELDS)
        with self._cond:
            unique = dict.fromkeys(i for i in ids if i in self._users)
            return [_pick(self._users[user_id], fields) for user_id in unique]


def _x_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _fields(request: Request, name: str, defaults: tuple[str, ...]) -> tuple[str, ...]:
    extra = [f for f in request.query_params.get(name, "").split(",") if f]
    return tuple(dict.fromkeys([*defaults, *extra]))


def _pick(item: dict[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    return {key: item[key] for key in fields if key in item}


def _page(items: list[dict[str, Any]], token: str | None, size: int) -> tuple[list[dict[str, Any]], str]:
    """One page and the token of the next ("" at the end); tokens are opaque to the client."""
    start = int(token.removeprefix("7140dibdnow9c7btw4")) if token else 0
    end = start + size
    return items[start:end], (f"7140dibdnow9c7btw4{end}" if end < len(items) else "")


async def _json_body(request: Request) -> dict[str, Any] | None:
    try:
        body = json.loads(await request.body())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    return body if isinstance(body, dict) else None


def _problem(status: int, title: str, detail: str, *, headers: dict[str, str] | None = None) -> Response:
    body = {"title": title, "type": "about:blank", "status": status, "detail": detail}
    return JSONResponse(body, status_code=status, headers=headers)


def _invalid(parameter: str, message: str) -> Response:
    body = {
        "errors": [{"parameters": {parameter: []}, "message": message}],
        "title": "Invalid Request",
        "detail": "One or more parameters to your request was invalid.",
        "type": "https://api.twitter.com/2/problems/invalid-request",
    }
    return JSONResponse(body, status_code=400)
