"""App push through FCM HTTP v1, and Web Push for browsers, behind one `push` channel.

Targets: `"topic:all"` (every app user, through the configured FCM topic), `"fcm:<registration
token>"` (one device), `"webpush:<subscription JSON>"` (one browser, see `channels.push.webpush`).
FCM authenticates with a service account: google-auth signs a JWT and trades it at the JSON's
`token_uri` for an access token, cached until shortly before it expires.
https://firebase.google.com/docs/cloud-messaging/send/v1-api
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import google.auth.exceptions
import httpx
import requests
from google.auth.transport.requests import Request as GoogleRequest
from google.oauth2 import service_account

from broadcaster.message import RenderedMessage
from channels.base import (
    CheckResult,
    DeliveryError,
    InboundMessage,
    RateLimited,
    Rejected,
    SendResult,
    Target,
    Unauthorized,
    Unavailable,
)
from channels.push.settings import PushSettings
from channels.push.webpush import WebPushSender
from channels.registry import CAPABILITIES
from channels.retry_hint import retry_after_seconds

__all__ = ["FCM_SCOPE", "PushChannel"]

FCM_SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
_REFRESH_MARGIN = 300.0  # seconds before expiry when a cached access token is renewed
_TOPIC = re.compile(r"^[a-zA-Z0-9-_.~%]{1,900}$")  # FCM topic names
_URL = re.compile(r"https?://[^\s<>\"'()]+")
_MAX_REASON = 200


class _ConfigError(Exception):
    """The service-account file is missing or unusable (message safe to show)."""


class _TimeoutRequest(GoogleRequest):
    """google-auth's requests transport with our timeout (its default is 120 s)."""

    def __init__(self, session: requests.Session, timeout: float) -> None:
        super().__init__(session)
        self._timeout = timeout

    def __call__(
        self,
        url: str,
        method: str = "GET",
        body: Any = None,
        headers: Any = None,
        timeout: Any = None,
        **kwargs: Any,
    ) -> Any:
        return super().__call__(url, method, body, headers, timeout=self._timeout, **kwargs)  # type: ignore[no-untyped-call]


class _FcmClient:
    """FCM HTTP v1 `messages:send` with a cached service-account access token."""

    def __init__(self, settings: PushSettings) -> None:
        self._settings = settings
        self._credentials: service_account.Credentials | None = None
        self._token = ""
        self._token_deadline = 0.0  # time.monotonic() after which the token is renewed
        self._lock = asyncio.Lock()
        self._http: httpx.AsyncClient | None = None
        self._auth_session: requests.Session | None = None

    @property
    def project_id(self) -> str:
        return str(self._credentials.project_id) if self._credentials is not None else ""

    def _load(self) -> service_account.Credentials:
        """Read the service-account file (in a worker thread: file I/O)."""
        if self._credentials is None:
            path = self._settings.service_account_file
            if not path:
                raise _ConfigError("no service account: set channels.push.service_account_file")
            try:
                credentials = service_account.Credentials.from_service_account_file(path, scopes=[FCM_SCOPE])
            except FileNotFoundError:
                raise _ConfigError(f"service-account file {path!r} does not exist") from None
            except OSError as exc:
                raise _ConfigError(f"service-account file {path!r} cannot be read: {exc.strerror}") from None
            except (ValueError, KeyError, TypeError):
                # `from None`: the parser may quote the file, private key included.
                raise _ConfigError(
                    f"service-account file {path!r} is not a valid service-account JSON"
                ) from None
            if not credentials.project_id:
                raise _ConfigError(f"service-account file {path!r} has no project_id")
            self._credentials = credentials
        return self._credentials

    def _refresh(self) -> tuple[str, float]:
        """Fetch a new access token (blocking: google-auth is synchronous)."""
        credentials = self._load()
        if self._auth_session is None:
            self._auth_session = requests.Session()
        credentials.refresh(_TimeoutRequest(self._auth_session, self._settings.timeout_seconds))
        lifetime = 3600.0
        if credentials.expiry is not None:
            expiry = credentials.expiry
            now = datetime.now(UTC) if expiry.tzinfo else datetime.now(UTC).replace(tzinfo=None)
            lifetime = (expiry - now).total_seconds()
        deadline = time.monotonic() + max(0.0, lifetime - min(_REFRESH_MARGIN, lifetime / 2))
        return str(credentials.token), deadline

    async def access_token(self) -> str:
        """A valid access token; one refresh for any number of concurrent callers."""
        if self._token and time.monotonic() < self._token_deadline:
            return self._token
        async with self._lock:
            if self._token and time.monotonic() < self._token_deadline:
                return self._token
            try:
                self._token, self._token_deadline = await asyncio.to_thread(self._refresh)
            except _ConfigError as exc:
                raise Unauthorized(f"the service account cannot send: {exc}") from None
            except google.auth.exceptions.RefreshError as exc:
                raise Unauthorized(f"the service account cannot send: {_refresh_detail(exc)}") from None
            except (google.auth.exceptions.TransportError, requests.RequestException, OSError) as exc:
                raise Unavailable(f"FCM token endpoint unreachable: {type(exc).__name__}") from None
            return self._token

    def _forget(self, token: str) -> None:
        if self._token == token:
            self._token, self._token_deadline = "", 0.0

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=self._settings.timeout_seconds)
        return self._http

    async def send(self, message: dict[str, Any]) -> SendResult:
        """POST one v1 message; a refused token is renewed once (it may have been revoked)."""
        for attempt in range(2):
            token = await self.access_token()
            url = f"{self._settings.fcm_base_url.rstrip('/')}/v1/projects/{self.project_id}/messages:send"
            try:
                response = await self._client().post(
                    url, json={"message": message}, headers={"Authorization": f"Bearer {token}"}
                )
            except httpx.HTTPError as exc:
                raise Unavailable(f"FCM unreachable: {type(exc).__name__}") from None
            if response.status_code == 200:
                try:
                    name = response.json()["name"]
                except (ValueError, KeyError, TypeError):
                    raise Unavailable("FCM accepted the message but its answer has no name") from None
                return SendResult(provider_message_id=str(name))
            error = fcm_error(response.status_code, response.content, response.headers)
            if response.status_code == 401 and attempt == 0:
                self._forget(token)
                continue
            raise error
        raise AssertionError("unreachable")  # the loop returns or raises

    async def aclose(self) -> None:
        http, self._http = self._http, None
        if http is not None:
            await http.aclose()
        session, self._auth_session = self._auth_session, None
        if session is not None:
            session.close()


def _refresh_detail(exc: google.auth.exceptions.RefreshError) -> str:
    """The token endpoint's `error: error_description`, never the assertion."""
    data = exc.args[1] if len(exc.args) > 1 else None
    if isinstance(data, Mapping):
        detail = ": ".join(str(data[k]) for k in ("error", "error_description") if data.get(k))
        if detail:
            return _short(f"token endpoint refused: {detail}")
    return "token endpoint refused the service account"


def _short(text: str) -> str:
    return text if len(text) <= _MAX_REASON else text[: _MAX_REASON - 1] + "…"


def fcm_error(status: int, body: bytes, headers: Mapping[str, str]) -> DeliveryError:
    """Map an FCM v1 error response (`{"error": {code, message, status, details}}`) to the error tree.

    https://firebase.google.com/docs/reference/fcm/rest/v1/ErrorCode
    """
    code, text, fcm_code = "", "", ""
    try:
        error = json.loads(body).get("error", {})
        code, text = str(error.get("status", "")), str(error.get("message", ""))
        for detail in error.get("details", []):
            if str(detail.get("@type", "")).endswith("google.firebase.fcm.v1.FcmError"):
                fcm_code = str(detail.get("errorCode", ""))
    except (ValueError, AttributeError, TypeError):
        pass  # a proxy's HTML page: the HTTP status decides alone
    label = fcm_code or code or f"HTTP {status}"
    if fcm_code == "UNREGISTERED":
        return Rejected("FCM: the app was uninstalled or the token expired (UNREGISTERED)")
    if fcm_code == "SENDER_ID_MISMATCH":
        return Rejected("FCM: the token belongs to another Firebase project (SENDER_ID_MISMATCH)")
    if status == 429 or code == "RESOURCE_EXHAUSTED" or fcm_code == "QUOTA_EXCEEDED":
        seconds = retry_after_seconds(headers.get("retry-after"))
        return RateLimited(f"FCM quota exceeded ({label}): retry after {seconds:g} s", seconds)
    if status in (401, 403) or code in ("UNAUTHENTICATED", "PERMISSION_DENIED"):
        return Unauthorized(_short(f"the service account cannot send: {label}: {text}".rstrip(": ")))
    if status == 404:
        return Unauthorized(_short(f"the service account cannot send: FCM project not found ({label})"))
    if status >= 500:
        if headers.get("retry-after"):
            seconds = retry_after_seconds(headers.get("retry-after"))
            return RateLimited(f"FCM unavailable ({label}): retry after {seconds:g} s", seconds)
        return Unavailable(f"FCM unavailable ({label})")
    if status >= 400:
        return Rejected(_short(f"FCM refused the message ({label}): {text}".rstrip(": ")))
    return Unavailable(f"FCM answered HTTP {status}")


def _incident_url(message: RenderedMessage) -> str:
    """Where tapping the notification leads: compose's incident link, else the first link in the text."""
    url = message.extra.get("incident_url")
    if isinstance(url, str) and url:
        return url
    for text in (*message.parts, message.title):
        found = _URL.search(text)
        if found:
            return found.group(0).rstrip(".,;:!?")
    return ""


class PushChannel:
    """App push (FCM HTTP v1) and browser push (Web Push) as one channel.

    >>> channel = PushChannel(settings.channels.push)
    >>> await channel.send(rendered, Target("topic:all"), idempotency_key="42:push:topic:all")
    """

    name = "push"
    capabilities = CAPABILITIES["push"]

    def __init__(self, settings: PushSettings) -> None:
        self._settings = settings
        self._fcm = _FcmClient(settings)
        self._webpush = WebPushSender(settings)

    def __repr__(self) -> str:
        account = "set" if self._settings.service_account_file else "unset"
        vapid = "set" if self._settings.vapid_private_key_file else "unset"
        return (
            f"PushChannel(fcm_base_url={self._settings.fcm_base_url!r}, topic={self._settings.topic!r}, "
            f"service_account=<{account}>, vapid_key=<{vapid}>)"
        )

    async def send(self, message: RenderedMessage, target: Target, *, idempotency_key: str) -> SendResult:
        """Send the title and first part to a topic, a device token or a browser subscription."""
        if not message.parts or not message.parts[0].strip():
            raise Rejected("nothing to send: the rendered push message has no body")
        kind, _, value = target.address.strip().partition(":")
        url = _incident_url(message)
        if kind == "webpush":
            payload = {"title": message.title, "body": message.parts[0]}
            if url:
                payload["url"] = url
            return await self._webpush.send(payload, value)
        if kind == "topic":
            topic = self._settings.topic if value == "all" else value
            if not _TOPIC.match(topic):
                raise Rejected(f"invalid FCM topic name {topic!r}")
            recipient = {"topic": topic}
        elif kind == "fcm":
            if not value.strip():
                raise Rejected("FCM target has no registration token")
            recipient = {"token": value.strip()}
        else:
            raise Rejected("unknown push target: expected topic:…, fcm:… or webpush:…")
        return await self._fcm.send(self._fcm_message(message, recipient, url, idempotency_key))

    def _fcm_message(
        self, message: RenderedMessage, recipient: dict[str, str], url: str, idempotency_key: str
    ) -> dict[str, Any]:
        ttl = self._settings.ttl_seconds
        # FCM has no idempotency key; the app can drop a duplicate sent again after a crash.
        data = {
            "kind": message.kind,
            "locale": message.locale,
            "delivery": hashlib.sha256(idempotency_key.encode()).hexdigest()[:32],
        }
        if url:
            data["url"] = url
        return {
            **recipient,
            "notification": {"title": message.title, "body": message.parts[0]},
            "android": {"priority": "high", "ttl": f"{ttl}s"},
            # APNs: priority 10 = immediate; expiration is a UNIX time (0 = deliver once, now).
            "apns": {
                "headers": {
                    "apns-priority": "10",
                    "apns-expiration": str(int(time.time()) + ttl if ttl else 0),
                }
            },
            "data": data,
        }

    def parse_inbound(self, body: bytes, headers: Mapping[str, str]) -> list[InboundMessage]:
        """Push has no replies."""
        return []

    async def check(self) -> CheckResult:
        """Get an FCM access token and load the VAPID key; say which one is wrong and how to fix it."""
        if not self._settings.service_account_file and not self._settings.vapid_private_key_file:
            return CheckResult(
                False,
                "no push credentials: neither service_account_file nor vapid_private_key_file is set",
                fix="set channels.push.service_account_file (Firebase console → service accounts)",
            )
        details: list[str] = []
        if self._settings.service_account_file:
            try:
                await self._fcm.access_token()
            except Unauthorized as exc:
                return CheckResult(
                    False,
                    exc.reason,
                    fix="download a new key in Firebase console → Project settings → Service accounts, "
                    "and point channels.push.service_account_file at it",
                )
            except DeliveryError as exc:
                return CheckResult(False, exc.reason, fix="check the network and the token_uri in the JSON")
            details.append(f"FCM token for project {self._fcm.project_id}")
        if self._settings.vapid_private_key_file:
            web = self._webpush.check()
            if not web.ok:
                return web
            details.append(web.detail)
        return CheckResult(True, "; ".join(details))

    async def aclose(self) -> None:
        """Close both HTTP clients; the channel may be used again afterwards."""
        await self._fcm.aclose()
        await self._webpush.aclose()
