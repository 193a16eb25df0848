"""Web Push to browsers (RFC 8030) with VAPID (RFC 8292) and aes128gcm payloads (RFC 8291).

A target is `"webpush:<subscription JSON>"`, the `PushSubscription.toJSON()` a browser gave us:
`{"endpoint": …, "keys": {"p256dh": …, "auth": …}}`. pywebpush encrypts and signs; this module
maps the push service's answers onto the error tree and owns the VAPID key file. The endpoint is
customer data: `channels.outbound_url` decides where it may take us, at subscription and at send.

>>> public_key = generate_vapid_key(Path("vapid.pem"))  # give it to the browser's subscribe()
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from py_vapid import Vapid, VapidException
from pywebpush import WebPushException, webpush_async

from channels.base import (
    CheckResult,
    DeliveryError,
    Rejected,
    SendResult,
    TargetBusy,
    Unauthorized,
    Unavailable,
)
from channels.outbound_url import (
    GuardedSession,
    OutboundPolicy,
    RedirectRefused,
    UnsafeAddress,
    UnsafeURL,
    guarded_session,
)
from channels.push.settings import PushSettings
from channels.retry_hint import retry_after_seconds
from channels.tls import client_context

__all__ = [
    "WebPushSender",
    "endpoint_policy",
    "generate_vapid_key",
    "parse_subscription",
    "public_key_from_file",
]


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _public_key_b64(key: ec.EllipticCurvePrivateKey) -> str:
    point = key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return _b64url(point)


def generate_vapid_key(path: Path) -> str:
    """Write a new P-256 VAPID private key (PEM, mode 0600) to `path`; return the public key.

    The return value is the application server key browsers pass to `pushManager.subscribe()`
    (uncompressed point, URL-safe base64 without padding). An existing file is never overwritten.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    # O_EXCL: never replace a key browsers already subscribed with; 0600 from the first byte.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600)  # the umask cannot widen it, but a stricter one must not matter either
        os.write(fd, pem)
    finally:
        os.close(fd)
    return _public_key_b64(key)


def _load_vapid_key(path: Path | str) -> ec.EllipticCurvePrivateKey:
    """The P-256 private key in `path`; `ValueError` (safe to show) when it is missing or wrong."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise ValueError(f"VAPID key file {str(path)!r} does not exist") from None
    except OSError as exc:
        raise ValueError(f"VAPID key file {str(path)!r} cannot be read: {exc.strerror}") from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        # `from None`: the parser's message may quote the file's content.
        raise ValueError(f"VAPID key file {str(path)!r} is not an unencrypted PEM private key") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise ValueError(f"VAPID key file {str(path)!r} does not hold a P-256 (prime256v1) key")
    return key


def public_key_from_file(path: Path | str) -> str:
    """The application server public key (URL-safe base64) of the VAPID key in `path`."""
    return _public_key_b64(_load_vapid_key(path))


def parse_subscription(raw: str, policy: OutboundPolicy) -> dict[str, Any]:
    """A browser subscription from its JSON; `Rejected` when it cannot be used (never quotes keys).

    The endpoint must pass `policy` (https, a known push service, no internal address).
    """
    try:
        data = json.loads(raw)
    except json.JSONDecodeError:
        raise Rejected("invalid browser subscription: not JSON") from None
    if not isinstance(data, dict):
        raise Rejected("invalid browser subscription: not a JSON object")
    endpoint, keys = data.get("endpoint"), data.get("keys")
    if not isinstance(endpoint, str) or not isinstance(keys, dict):
        raise Rejected("invalid browser subscription: endpoint or keys missing")
    for name in ("p256dh", "auth"):
        value = keys.get(name)
        if not isinstance(value, str) or not value:
            raise Rejected(f"invalid browser subscription: keys.{name} missing")
        try:
            base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
        except (binascii.Error, ValueError):
            raise Rejected(f"invalid browser subscription: keys.{name} is not base64url") from None
    try:
        policy.check_url(endpoint)  # the endpoint is customer data: never an internal address
    except UnsafeURL as exc:
        raise Rejected(f"invalid browser subscription: the endpoint {exc}") from None
    return {"endpoint": endpoint, "keys": {"p256dh": keys["p256dh"], "auth": keys["auth"]}}


def endpoint_policy(settings: PushSettings) -> OutboundPolicy:
    """Where browser subscriptions may send us: `webpush_hosts`, public addresses (or the listed networks)."""
    networks = tuple(ipaddress.ip_network(str(network)) for network in settings.webpush_private_networks)
    return OutboundPolicy(settings.webpush_hosts, networks, setting="channels.push.webpush_hosts")


def _origin(endpoint: str) -> str:
    parts = urlsplit(endpoint)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"  # never a user name or password


class WebPushSender:
    """Sends one encrypted notification per browser subscription through one aiohttp session."""

    def __init__(self, settings: PushSettings) -> None:
        self._settings = settings
        self._policy = endpoint_policy(settings)
        self._vapid: Vapid | None = None
        self._http: GuardedSession | None = None

    def __repr__(self) -> str:
        state = "set" if self._settings.vapid_private_key_file else "unset"
        return f"WebPushSender(vapid_key=<{state}>, subject={self._settings.vapid_subject!r})"

    def _get_vapid(self) -> Vapid:
        if self._vapid is None:
            path = self._settings.vapid_private_key_file
            if not path:
                raise Unauthorized(
                    "no VAPID key: set channels.push.vapid_private_key_file (broadcaster init writes one)"
                )
            try:
                # Our own loader: py_vapid's from_file silently creates a key when the file is missing.
                self._vapid = Vapid(private_key=_load_vapid_key(path))
            except ValueError as exc:
                raise Unauthorized(str(exc)) from None
        return self._vapid

    def _get_session(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.session.closed:
            tls = client_context(self._settings.webpush_ca_file, "channels.push.webpush_ca_file")
            self._http = guarded_session(self._policy, tls, self._settings.timeout_seconds)
        return self._http.session

    async def send(self, payload: dict[str, str], subscription_json: str) -> SendResult:
        """Encrypt `payload` (JSON) for one subscription and post it with `Urgency: high`.

        Returns the push service's `Location` (the message resource) as the provider id.
        """
        subscription = parse_subscription(subscription_json, self._policy)
        vapid = self._get_vapid()
        origin = _origin(subscription["endpoint"])
        try:
            response = await webpush_async(
                subscription_info=subscription,
                data=json.dumps(payload, ensure_ascii=False),
                vapid_private_key=vapid,
                # A fresh dict per call: pywebpush writes `aud` and `exp` into it.
                vapid_claims={"sub": self._settings.vapid_subject},
                content_encoding="aes128gcm",
                timeout=self._settings.timeout_seconds,
                ttl=self._settings.ttl_seconds,
                headers={"Urgency": "high"},
                aiohttp_session=self._get_session(),
            )
        except WebPushException as exc:
            raise _push_error(exc, origin) from None
        except RedirectRefused as exc:
            raise Rejected(f"push service {origin} {exc}") from None
        except UnsafeURL as exc:
            raise Rejected(f"invalid browser subscription: the endpoint {exc}") from None
        except aiohttp.ClientConnectorDNSError as exc:
            if isinstance(exc.os_error, UnsafeAddress):
                raise Rejected(f"invalid browser subscription: the endpoint {exc.os_error}") from None
            raise Unavailable(f"push service {origin} unreachable: {type(exc).__name__}") from None
        except VapidException:
            raise Unauthorized(
                "VAPID subject refused: channels.push.vapid_subject must be mailto:… or https://…"
            ) from None
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise Unavailable(f"push service {origin} unreachable: {type(exc).__name__}") from None
        if isinstance(response, str):  # only with curl=True, which we never ask for
            raise Unavailable("pywebpush returned no response")
        location = response.headers.get("Location", "")
        return SendResult(provider_message_id=location or f"webpush:{response.status}")

    def check(self) -> CheckResult:
        """The VAPID key loads and the subject is acceptable (no network: push services vary)."""
        try:
            vapid = self._get_vapid()
            vapid.sign({"sub": self._settings.vapid_subject, "aud": "https://push.example"})
        except Unauthorized as exc:
            return CheckResult(False, exc.reason, fix="run `broadcaster init` or fix vapid_private_key_file")
        except VapidException:
            return CheckResult(
                False,
                f"VAPID subject {self._settings.vapid_subject!r} is not mailto:… or https://…",
                fix='set channels.push.vapid_subject = "mailto:status@your-shop.example"',
            )
        return CheckResult(True, f"Web Push VAPID key {_public_key_b64(vapid.private_key)[:12]}…")

    async def aclose(self) -> None:
        """Close the HTTP session; the sender may be used again afterwards."""
        http, self._http = self._http, None
        if http is not None:
            await http.aclose()


def _push_error(exc: WebPushException, origin: str) -> DeliveryError:
    """Map a push service's answer; its waits are `TargetBusy`: the endpoint is the subscriber's
    choice (anyone can subscribe with their own server), so it defers that subscription only."""
    status = exc.status_code
    if status is None:  # raised before any request: the subscription itself is unusable
        return Rejected("invalid browser subscription")
    if status in (404, 410):
        return Rejected("browser subscription expired")
    if status == 429:
        seconds = retry_after_seconds(exc.retry_after)
        return TargetBusy(f"push service {origin} asks to slow down: retry after {seconds:g} s", seconds)
    if status == 401:
        return Unauthorized(f"push service {origin} refused our VAPID signature (HTTP 401)")
    if status == 403:
        # Per subscription: it was made with another application server key (key rotated).
        return Rejected(f"push service {origin} refused our VAPID key for this subscription (HTTP 403)")
    if status == 413:
        return Rejected("notification payload too large for the push service")
    if status >= 500:
        if exc.retry_after:
            seconds = retry_after_seconds(exc.retry_after)
            return TargetBusy(f"push service {origin} unavailable: retry after {seconds:g} s", seconds)
        return Unavailable(f"push service {origin} unavailable (HTTP {status})")
    if 400 <= status < 500:
        return Rejected(f"push service {origin} refused the notification (HTTP {status})")
    return Unavailable(f"push service {origin} answered HTTP {status}")
