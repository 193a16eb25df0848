"""A local Web Push service (RFC 8030) that checks VAPID (RFC 8292) and decrypts (RFC 8291).

`endpoint.subscribe()` plays the browser: a P-256 key pair and a 16-byte auth secret, returned as
`PushSubscription.toJSON()`. `POST /push/<id>` verifies the `vapid t=…, k=…` JWT, the `TTL`,
`Urgency` and `Content-Encoding` headers, then decrypts the body with `http_ece` and records it.
It speaks HTTPS with a trustme certificate for 127.0.0.1 and localhost; `push.settings` are the
`[channels.push]` keys that let a sender reach it (its CA, its host, 127.0.0.1/32 as an allowed network).

>>> with WebPushEndpoint() as push:
...     subscription = push.subscribe()
...     sender = WebPushSender(PushSettings(vapid_private_key_file=…, **push.settings))
"""

from __future__ import annotations

import base64
import json
import secrets
import shutil
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import http_ece
import trustme
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.peers.fcm import b64url_decode
from tests.peers.http_server import ServedPeer, ServerThread

__all__ = ["PushRecord", "WebPushEndpoint"]

_URGENCIES = frozenset({"very-low", "low", "normal", "high"})
_MAX_PAYLOAD = 4096  # RFC 8030 §7.2: push services must accept at least 4096 bytes


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


@dataclass(frozen=True, slots=True)
class PushRecord:
    """One delivered notification, decrypted."""

    subscription_id: str
    payload: Any  # the decrypted body, parsed as JSON
    ttl: int
    urgency: str
    vapid_key: str  # the `k=` application server key
    vapid_claims: dict[str, Any]


@dataclass(slots=True)
class _Browser:
    private_key: ec.EllipticCurvePrivateKey
    auth: bytes
    server_key: str  # applicationServerKey given to subscribe(); "" accepts any key
    gone: bool = False
    throttled: str = ""  # a Retry-After this endpoint answers every push with (429), if set


class WebPushEndpoint(ServedPeer):
    """A push service on 127.0.0.1 over HTTPS.

    Faults: `expire(sub)` (410), `throttle(sub, hint)` and `exhaust_next(n)` (429), `down` (503),
    `redirect_to` (307 there).
    """

    def __init__(self) -> None:
        self.down = False
        self.redirect_to = ""  # when set, every push is answered 307 with this Location
        self.records: list[PushRecord] = []
        self.refusals: list[tuple[int, str]] = []  # (status, why) of every refused request
        self._cond = threading.Condition()
        self._browsers: dict[str, _Browser] = {}
        self._exhausted = 0
        self._retry_after = "30"
        self._dir = Path(tempfile.mkdtemp(prefix="webpush-peer-"))
        authority = trustme.CA()
        leaf = authority.issue_cert("127.0.0.1", "localhost")
        self.ca_file = str(self._dir / "ca.pem")
        authority.cert_pem.write_to_path(self.ca_file)
        leaf.private_key_pem.write_to_path(str(self._dir / "key.pem"))
        for index, pem in enumerate(leaf.cert_chain_pems):
            pem.write_to_path(str(self._dir / "cert.pem"), append=index > 0)
        app = Starlette(routes=[Route("/push/{sub_id}", self._push, methods=["POST"])])
        self._server = ServerThread(
            app,
            "webpush-peer",
            ssl_certfile=str(self._dir / "cert.pem"),
            ssl_keyfile=str(self._dir / "key.pem"),
        )
        self.origin = self._server.origin
        self.port = self._server.port
        self.settings: dict[str, Any] = {
            "webpush_hosts": ("127.0.0.1",),
            "webpush_private_networks": ("127.0.0.1/32",),
            "webpush_ca_file": self.ca_file,
        }

    def stop(self) -> None:
        """Stop serving (bounded) and remove the certificate files."""
        super().stop()
        shutil.rmtree(self._dir, ignore_errors=True)

    # ----- browser side ----------------------------------------------------------------------

    def subscribe(self, application_server_key: str = "") -> dict[str, Any]:
        """A new subscription, as `PushSubscription.toJSON()`; bound to a VAPID key when given."""
        key = ec.generate_private_key(ec.SECP256R1())
        auth = secrets.token_bytes(16)
        sub_id = secrets.token_urlsafe(24)
        with self._cond:
            self._browsers[sub_id] = _Browser(key, auth, application_server_key)
        point = key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return {
            "endpoint": f"{self.origin}/push/{sub_id}",
            "expirationTime": None,
            "keys": {"p256dh": _b64url(point), "auth": _b64url(auth)},
        }

    def expire(self, subscription: dict[str, Any]) -> None:
        """The user revoked permission: the endpoint answers 410 Gone from now on."""
        with self._cond:
            self._browsers[subscription["endpoint"].rsplit("/", 1)[1]].gone = True

    def throttle(self, subscription: dict[str, Any], retry_after: str) -> None:
        """This endpoint answers every push with 429 and `Retry-After: <retry_after>` from now on."""
        with self._cond:
            self._browsers[subscription["endpoint"].rsplit("/", 1)[1]].throttled = retry_after

    def exhaust_next(self, n: int, retry_after: str = "30") -> None:
        """Answer the next `n` pushes with 429 Too Many Requests and `Retry-After` (sent as given)."""
        with self._cond:
            self._exhausted, self._retry_after = n, retry_after

    def wait_for(self, count: int, timeout: float) -> bool:
        """Wait until at least `count` notifications were accepted; False after `timeout` seconds."""
        with self._cond:
            return self._cond.wait_for(lambda: len(self.records) >= count, timeout=timeout)

    # ----- push service ----------------------------------------------------------------------

    def _refuse(self, status: int, why: str, headers: dict[str, str] | None = None) -> Response:
        with self._cond:
            self.refusals.append((status, why))
        return Response(why, status_code=status, headers=headers, media_type="text/plain")

    async def _push(self, request: Request) -> Response:
        if self.down:
            return self._refuse(503, "service unavailable")
        if self.redirect_to:
            return self._refuse(307, "moved", {"Location": self.redirect_to})
        with self._cond:
            browser = self._browsers.get(request.path_params["sub_id"])
        if browser is None:
            return self._refuse(404, "no such subscription")
        if browser.gone:
            return self._refuse(410, "push subscription has unsubscribed or expired")
        if browser.throttled:
            return self._refuse(429, "too many requests", {"Retry-After": browser.throttled})
        try:
            audience = f"https://{request.headers.get('host', '')}"  # the origin the sender addressed
            key, claims = self._verify_vapid(request.headers.get("authorization", ""), audience)
        except ValueError as exc:
            return self._refuse(401, str(exc))
        if browser.server_key and key != browser.server_key:
            return self._refuse(403, "VAPID key does not match the subscription's applicationServerKey")
        ttl = request.headers.get("ttl", "")
        urgency = request.headers.get("urgency", "normal")
        if not ttl.isdigit():
            return self._refuse(400, "TTL header missing or invalid")
        if urgency not in _URGENCIES:
            return self._refuse(400, "invalid Urgency")
        if request.headers.get("content-encoding") != "aes128gcm":
            return self._refuse(415, "Content-Encoding must be aes128gcm")
        body = await request.body()
        if len(body) > _MAX_PAYLOAD:
            return self._refuse(413, "payload too large")
        try:
            plain = http_ece.decrypt(
                body, private_key=browser.private_key, auth_secret=browser.auth, version="aes128gcm"
            )
            payload = json.loads(plain)
        except (http_ece.ECEException, InvalidTag, ValueError) as exc:
            return self._refuse(400, f"cannot decrypt: {type(exc).__name__}")
        with self._cond:
            if self._exhausted > 0:
                self._exhausted -= 1
                return self._refuse(429, "too many requests", {"Retry-After": self._retry_after})
            self.records.append(
                PushRecord(request.path_params["sub_id"], payload, int(ttl), urgency, key, claims)
            )
            self._cond.notify_all()
        return Response(status_code=201, headers={"Location": f"{self.origin}/m/{uuid.uuid4().hex}"})

    def _verify_vapid(self, header: str, audience: str) -> tuple[str, dict[str, Any]]:
        """Check `vapid t=<ES256 JWT>, k=<public key>`: signature, aud = `audience`, exp, sub."""
        scheme, _, rest = header.partition(" ")
        if scheme.lower() != "vapid":
            raise ValueError("Authorization must use the vapid scheme")
        fields = dict(part.strip().split("=", 1) for part in rest.split(",") if "=" in part)
        token, key = fields.get("t", ""), fields.get("k", "")
        try:
            public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b64url_decode(key))
            head_b64, claims_b64, sig_b64 = token.split(".")
            header_json = json.loads(b64url_decode(head_b64))
            claims = json.loads(b64url_decode(claims_b64))
            signature = b64url_decode(sig_b64)
        except ValueError:
            raise ValueError("malformed VAPID header") from None
        if header_json.get("alg") != "ES256" or len(signature) != 64:
            raise ValueError("VAPID JWT must be ES256")
        r, s = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
        try:
            public.verify(
                encode_dss_signature(r, s), f"{head_b64}.{claims_b64}".encode(), ec.ECDSA(hashes.SHA256())
            )
        except InvalidSignature:
            raise ValueError("VAPID signature invalid") from None
        now = time.time()
        if claims.get("aud") != audience:
            raise ValueError("VAPID aud is not this push service's origin")
        if not isinstance(claims.get("exp"), int) or not now < claims["exp"] <= now + 24 * 3600:
            raise ValueError("VAPID exp missing, past, or more than 24 h ahead")
        if not claims.get("sub"):
            raise ValueError("VAPID sub missing")
        return key, claims
