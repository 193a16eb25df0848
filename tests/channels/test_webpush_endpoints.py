"""A browser's push endpoint is customer data: the sender never POSTs where the policy forbids.

Every test plays the attacker: a subscription naming an internal address, a host no browser uses,
a push service answering 307 towards an internal server. The forbidden server is a real local peer,
and it must receive nothing.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from broadcaster.config import Settings
from broadcaster.delivery.subscribers import NewSubscriber, validate
from channels.base import Rejected, SendResult
from channels.outbound_url import OutboundPolicy, UnsafeURL
from channels.push.settings import WEBPUSH_HOSTS, PushSettings
from channels.push.webpush import WebPushSender
from tests.conftest import make_settings
from tests.peers.http_server import ServedPeer, ServerThread
from tests.peers.webpush import WebPushEndpoint

KEYS = {"p256dh": "BNcRdreALRFXTkOOUHK1EtK2wtaz5Ry4YfYCA_0QTpQtUbVlUls0VJXg7A8u-Ts1XbjhazAkj7I99e8QcYP7DkM",
        "auth": "tBHItJI5svbpez7KI4CCXg"}  # fmt: skip


class InternalService(ServedPeer):
    """A service on 127.0.0.1 that only the server's own network can reach: records every request."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, bytes]] = []
        self._lock = threading.Lock()
        self._server = ServerThread(
            Starlette(routes=[Route("/{path:path}", self._record, methods=["GET", "POST", "PUT"])]),
            "internal-peer",
        )
        self.origin = self._server.origin
        self.port = self._server.port

    async def _record(self, request: Request) -> Response:
        body = await request.body()
        with self._lock:
            self.requests.append((request.method, request.url.path, body))
        return Response("internal secrets", status_code=200)


@pytest.fixture
def internal() -> Iterator[InternalService]:
    with InternalService() as service:
        yield service


def subscription(endpoint: str) -> str:
    return json.dumps({"endpoint": endpoint, "expirationTime": None, "keys": KEYS})


async def send(settings: PushSettings, subscription_json: str) -> SendResult:
    sender = WebPushSender(settings)
    try:
        return await sender.send({"title": "Paiement", "body": "Retour vers 14 h 30."}, subscription_json)
    finally:
        await sender.aclose()


def push_settings(vapid: Path, **extra: Any) -> PushSettings:
    return PushSettings(vapid_private_key_file=str(vapid), timeout_seconds=5.0, **extra)


def settings_with(sqlite_url: str, **push: Any) -> Settings:
    return make_settings(sqlite_url, channels={"push": push})


async def test_a_redirect_is_never_followed(
    push_service: WebPushEndpoint, internal: InternalService, vapid_file: Path
) -> None:
    push_service.redirect_to = f"{internal.origin}/admin/purge"
    browser = json.dumps(push_service.subscribe())
    with pytest.raises(Rejected, match="redirect.*307"):
        await send(push_settings(vapid_file, **push_service.settings), browser)
    assert internal.requests == []


@pytest.mark.parametrize(
    ("endpoint", "why"),
    [
        ("https://127.0.0.1:{port}/push/x", "not a known push service"),
        ("https://10.0.0.1/push/x", "not a known push service"),
        ("https://push.attacker.example/x", "not a known push service"),
        ("https://fcm.googleapis.com.attacker.example/fcm/send/x", "not a known push service"),
        ("http://fcm.googleapis.com/fcm/send/x", "https://"),
        ("https://user:pw@fcm.googleapis.com/fcm/send/x", "user name or password"),
    ],
    ids=["loopback-port", "private", "unknown-host", "lookalike-suffix", "plain-http", "userinfo"],
)
async def test_a_forbidden_endpoint_is_refused_at_send_with_no_request(
    internal: InternalService, vapid_file: Path, endpoint: str, why: str
) -> None:
    address = endpoint.format(port=internal.port)
    with pytest.raises(Rejected, match=why) as caught:
        await send(push_settings(vapid_file), subscription(address))
    assert caught.value.reason.startswith("invalid browser subscription: the endpoint")
    assert internal.requests == []


@pytest.mark.parametrize(
    "endpoint",
    ["https://127.0.0.1:{port}/push/x", "https://10.0.0.1/push/x", "https://push.attacker.example/x"],
    ids=["loopback-port", "private", "unknown-host"],
)
def test_a_forbidden_endpoint_is_refused_at_subscription(
    sqlite_url: str, internal: InternalService, endpoint: str
) -> None:
    address = endpoint.format(port=internal.port)
    entry = NewSubscriber(push="webpush:" + subscription(address), line=7)
    _, problems = validate(entry, settings_with(sqlite_url))
    [problem] = problems
    assert problem.startswith("push webpush:…: invalid browser subscription: the endpoint")
    assert "not a known push service (see channels.push.webpush_hosts)" in problem


def test_a_real_browser_endpoint_is_accepted_at_subscription(sqlite_url: str) -> None:
    entry = NewSubscriber(push="webpush:" + subscription("https://fcm.googleapis.com/fcm/send/dH3k:APA91b"))
    assert validate(entry, settings_with(sqlite_url))[1] == []


async def test_a_listed_name_that_resolves_to_loopback_is_refused_when_connecting(
    push_service: WebPushEndpoint, vapid_file: Path
) -> None:
    # "localhost" is on the list but resolves to 127.0.0.1: what a rebound DNS name looks like.
    endpoint = push_service.subscribe()["endpoint"].replace("127.0.0.1", "localhost")
    settings = push_settings(vapid_file, webpush_hosts=("localhost",), webpush_ca_file=push_service.ca_file)
    before = len(push_service.records) + len(push_service.refusals)
    with pytest.raises(Rejected, match="'localhost' resolves to 127.0.0.1 is a loopback address: refused"):
        await send(settings, subscription(endpoint))
    assert len(push_service.records) + len(push_service.refusals) == before


async def test_an_allowed_network_is_an_explicit_exception(
    push_service: WebPushEndpoint, vapid_file: Path
) -> None:
    browser = push_service.subscribe()
    browser["endpoint"] = browser["endpoint"].replace("127.0.0.1", "localhost")
    settings = push_settings(vapid_file, **{**push_service.settings, "webpush_hosts": ("localhost",)})
    before = len(push_service.records)
    await send(settings, json.dumps(browser))
    assert push_service.wait_for(before + 1, timeout=5)


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("::ffff:127.0.0.1", "loopback"),
        ("10.1.2.3", "private"),
        ("192.168.1.1", "private"),
        ("169.254.169.254", "link-local"),
        ("fe80::1", "link-local"),
        ("0.0.0.0", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("100.64.0.1", "non-global"),
        ("fd00::1", "private"),
    ],
)
def test_non_public_addresses_are_named(address: str, kind: str) -> None:
    shown = address.removeprefix("::ffff:")  # an IPv4-mapped address is judged as the IPv4 one
    assert OutboundPolicy(WEBPUSH_HOSTS).refusal(address) == f"{shown} is a {kind} address"


def test_public_addresses_and_listed_hosts_pass() -> None:
    policy = OutboundPolicy(WEBPUSH_HOSTS)
    assert policy.refusal("142.250.74.202") == ""
    assert policy.check_url("https://web.push.apple.com/QGuQyavXutnMH") == "web.push.apple.com"
    assert (
        policy.check_url("https://wns2-par02p.notify.windows.com/w/?token=x")
        == "wns2-par02p.notify.windows.com"
    )
    with pytest.raises(UnsafeURL, match="not a known push service"):
        policy.check_url("https://notify.windows.com.evil/x")  # a suffix, not a subdomain


def test_a_bad_host_pattern_is_a_config_error() -> None:
    with pytest.raises(ValidationError, match="webpush_hosts"):
        PushSettings(webpush_hosts=("*evil*",))
