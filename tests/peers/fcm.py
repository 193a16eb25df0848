"""A local FCM HTTP v1 service and its OAuth2 token endpoint over real HTTP (Starlette + uvicorn).

`POST /token` is a JWT-bearer grant (RFC 7523) as Google runs it: the assertion's RS256
signature is checked with the service account's public key. `POST /v1/projects/{p}/messages:send`
wants the access token it issued and answers with FCM's real response and error shapes
(`tests/payloads/push/*.json`).

>>> with FcmPeer() as peer:
...     account = peer.service_account(tmp_path)  # a throwaway service-account JSON
...     settings = PushSettings(service_account_file=str(account), fcm_base_url=peer.base_url)
"""

from __future__ import annotations

import base64
import copy
import itertools
import json
import re
import secrets
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.peers.http_server import ServedPeer, ServerThread  # re-exported: it was first defined here

__all__ = ["GOOGLE_TOKEN_AUDIENCE", "FcmPeer", "ServerThread", "b64url_decode"]

PAYLOADS = Path(__file__).parent.parent / "payloads" / "push"
# google-auth signs service-account assertions for this audience whatever the JSON's token_uri is
# (google/oauth2/service_account.py, _GOOGLE_OAUTH2_TOKEN_ENDPOINT); Google's endpoint checks it.
GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"
FCM_SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
_JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
_REGISTRATION_TOKEN = re.compile(r"^[A-Za-z0-9_:\-]{20,4096}$")
_TTL = re.compile(r"^\d+(\.\d{1,9})?s$")


def b64url_decode(text: str) -> bytes:
    """Base64url without padding (JWT, Web Push keys)."""
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _payload(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((PAYLOADS / name).read_text(encoding="utf-8"))
    return data


class FcmPeer(ServedPeer):
    """FCM v1 + OAuth2 token endpoint on 127.0.0.1; `peer.service_account(dir)` writes credentials.

    Faults: `unregister(token)`, `exhaust_next(n, retry_after)`, `down`, `refuse_tokens`,
    `revoke_tokens()`. Records: `messages`, `token_requests`, `wait_for(count, timeout)`.
    """

    def __init__(self, project_id: str = "maison-exemple-status") -> None:
        self.project_id = project_id
        self.down = False
        self.refuse_tokens = False
        self.messages: list[dict[str, Any]] = []
        self.token_requests = 0
        self.assertions: list[dict[str, Any]] = []  # verified JWT claims, in arrival order
        self._cond = threading.Condition()
        self._accounts: dict[str, tuple[rsa.RSAPublicKey, str, str]] = {}  # email -> (key, kid, project)
        self._tokens: dict[str, tuple[float, str]] = {}  # access token -> (expires, project)
        self._unregistered: set[str] = set()
        self._exhausted = 0
        self._retry_after = 30
        self._ids = itertools.count(1)
        self._key: rsa.RSAPrivateKey | None = None
        app = Starlette(
            routes=[
                Route("/token", self._token, methods=["POST"]),
                Route("/v1/projects/{project}/messages:send", self._send, methods=["POST"]),
            ]
        )
        self._server = ServerThread(app, "fcm-peer")
        self.base_url = self._server.origin
        self.token_uri = f"{self.base_url}/token"

    # ----- credentials -----------------------------------------------------------------------

    def service_account(
        self,
        directory: Path,
        *,
        project_id: str | None = None,
        registered: bool = True,
        name: str = "sa.json",
    ) -> Path:
        """Write a service-account JSON whose `token_uri` is this peer; `registered=False`: unknown key."""
        if self._key is None or not registered:
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        else:
            key = self._key
        if registered:
            self._key = key
        project = project_id or self.project_id
        kid = secrets.token_hex(20)
        email = f"firebase-adminsdk-{secrets.token_hex(3)}@{project}.iam.gserviceaccount.com"
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode("ascii")
        info = {
            "type": "service_account",
            "project_id": project,
            "private_key_id": kid,
            "private_key": pem,
            "client_email": email,
            "client_id": str(100000000000000000000 + secrets.randbelow(10**20)),
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": self.token_uri,
            "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
            "client_x509_cert_url": f"https://www.googleapis.com/robot/v1/metadata/x509/{email}",
            "universe_domain": "googleapis.com",
        }
        if registered:
            with self._cond:
                self._accounts[email] = (key.public_key(), kid, project)
        path = directory / name
        path.write_text(json.dumps(info, indent=2), encoding="utf-8")
        return path

    def issued_tokens(self) -> list[str]:
        """Access tokens handed out so far (tests check none leaks into a repr or a reason)."""
        with self._cond:
            return list(self._tokens)

    # ----- faults and records ----------------------------------------------------------------

    def reset(self) -> None:
        """Forget records and faults, keep registered accounts."""
        with self._cond:
            self.down = False
            self.refuse_tokens = False
            self.messages.clear()
            self.assertions.clear()
            self.token_requests = 0
            self._tokens.clear()
            self._unregistered.clear()
            self._exhausted = 0

    def unregister(self, token: str) -> None:
        """The app behind `token` was uninstalled: sends to it answer 404 UNREGISTERED."""
        with self._cond:
            self._unregistered.add(token)

    def exhaust_next(self, n: int, retry_after: int = 30) -> None:
        """Answer the next `n` sends with 429 RESOURCE_EXHAUSTED and `Retry-After`."""
        with self._cond:
            self._exhausted, self._retry_after = n, retry_after

    def revoke_tokens(self) -> None:
        """Invalidate every issued access token (sends with them get 401 UNAUTHENTICATED)."""
        with self._cond:
            self._tokens.clear()

    def wait_for(self, count: int, timeout: float) -> bool:
        """Wait until at least `count` messages were accepted; False after `timeout` seconds."""
        with self._cond:
            return self._cond.wait_for(lambda: len(self.messages) >= count, timeout=timeout)

    # ----- OAuth2 token endpoint -------------------------------------------------------------

    async def _token(self, request: Request) -> Response:
        form = dict(parse_qsl((await request.body()).decode("utf-8"), keep_blank_values=True))
        with self._cond:
            self.token_requests += 1
        if form.get("grant_type") != _JWT_GRANT or not isinstance(form.get("assertion"), str):
            return _oauth_error("unsupported_grant_type", "Invalid grant_type.")
        try:
            claims = self._verify_assertion(str(form["assertion"]))
        except ValueError as exc:
            return _oauth_error("invalid_grant", str(exc))
        if self.refuse_tokens:
            return _oauth_error("invalid_grant", "Invalid grant: account not found")
        token = f"ya29.c.{secrets.token_urlsafe(48)}"
        with self._cond:
            self.assertions.append(claims)
            self._tokens[token] = (time.time() + 3600, self._accounts[claims["iss"]][2])
        body = _payload("oauth_token_ok.json")
        body.update(access_token=token, expires_in=3599)
        return JSONResponse(body)

    def _verify_assertion(self, assertion: str) -> dict[str, Any]:
        try:
            head_b64, claims_b64, sig_b64 = assertion.split(".")
            header = json.loads(b64url_decode(head_b64))
            claims = json.loads(b64url_decode(claims_b64))
            signature = b64url_decode(sig_b64)
        except ValueError:
            raise ValueError("Invalid JWT: malformed assertion") from None
        if header.get("alg") != "RS256":
            raise ValueError("Invalid JWT: algorithm must be RS256")
        with self._cond:
            account = self._accounts.get(str(claims.get("iss")))
        if account is None:
            raise ValueError("Invalid JWT Signature.")
        public_key, kid, _ = account
        try:
            public_key.verify(
                signature, f"{head_b64}.{claims_b64}".encode(), padding.PKCS1v15(), hashes.SHA256()
            )
        except InvalidSignature:
            raise ValueError("Invalid JWT Signature.") from None
        if header.get("kid") not in (None, kid):
            raise ValueError("Invalid JWT Signature.")
        if claims.get("aud") not in (GOOGLE_TOKEN_AUDIENCE, self.token_uri):
            raise ValueError("Invalid JWT: audience is not the token endpoint")
        now = time.time()
        if not (claims.get("iat", now + 999) <= now + 60 < claims.get("exp", 0) + 60):
            raise ValueError(
                "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe."
            )
        if FCM_SCOPE not in str(claims.get("scope", "")).split():
            raise ValueError("Invalid JWT: scope does not include firebase.messaging")
        return dict(claims)

    # ----- FCM v1 ----------------------------------------------------------------------------

    async def _send(self, request: Request) -> Response:
        if self.down:
            return JSONResponse(_payload("fcm_unavailable.json"), status_code=503)
        project = request.path_params["project"]
        bearer = request.headers.get("authorization", "")
        token = bearer[7:] if bearer.startswith("Bearer ") else ""
        with self._cond:
            issued = self._tokens.get(token)
        if issued is None or issued[0] < time.time():
            return JSONResponse(_payload("fcm_unauthenticated.json"), status_code=401)
        if issued[1] != project:
            body = _payload("fcm_permission_denied.json")
            body["error"]["message"] = body["error"]["message"].replace("maison-exemple-status", project)
            return JSONResponse(body, status_code=403)
        try:
            message = (await request.json())["message"]
        except (ValueError, KeyError, TypeError):
            return _invalid("Invalid JSON payload received.", "message")
        problem = _validate(message)
        if problem:
            return _invalid(*problem)
        with self._cond:
            if self._exhausted > 0:
                self._exhausted -= 1
                return JSONResponse(
                    _payload("fcm_quota_exceeded.json"),
                    status_code=429,
                    headers={"Retry-After": str(self._retry_after)},
                )
            if message.get("token") in self._unregistered:
                return JSONResponse(_payload("fcm_unregistered.json"), status_code=404)
            name = f"projects/{project}/messages/0:{int(time.time() * 1e6)}%{next(self._ids):016x}"
            self.messages.append({"project": project, "name": name, "message": copy.deepcopy(message)})
            self._cond.notify_all()
        return JSONResponse({"name": name})


def _validate(message: Any) -> tuple[str, str] | None:
    """FCM's checks that matter here: one recipient, string data, a valid TTL and token."""
    if not isinstance(message, dict):
        return "Invalid JSON payload received.", "message"
    recipients = [k for k in ("token", "topic", "condition") if k in message]
    if len(recipients) != 1:
        return "Exactly one of token, topic or condition must be specified.", "message"
    token = message.get("token")
    if token is not None and not (isinstance(token, str) and _REGISTRATION_TOKEN.match(token)):
        return "The registration token is not a valid FCM registration token", "message.token"
    checks: list[tuple[str, Callable[[Any], bool], str]] = [
        (
            "data",
            lambda d: isinstance(d, dict) and all(isinstance(v, str) for v in d.values()),
            "message.data",
        ),
        ("notification", lambda n: isinstance(n, dict), "message.notification"),
        (
            "android",
            lambda a: isinstance(a, dict) and bool(_TTL.match(str(a.get("ttl", "0s")))),
            "message.android.ttl",
        ),
    ]
    for key, valid, field in checks:
        if key in message and not valid(message[key]):
            return f"Invalid value at '{field}'", field
    return None


def _invalid(text: str, field: str) -> Response:
    body = _payload("fcm_invalid_token.json")
    body["error"]["message"] = text
    body["error"]["details"][1]["fieldViolations"] = [{"field": field, "description": text}]
    return JSONResponse(body, status_code=400)


def _oauth_error(error: str, description: str) -> Response:
    return JSONResponse({"error": error, "error_description": description}, status_code=400)
