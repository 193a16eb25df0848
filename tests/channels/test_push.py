"""PushChannel against a local FCM v1 + OAuth2 peer and a decrypting Web Push endpoint."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import stat
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from broadcaster.message import RenderedMessage
from channels.base import (
    DeliveryError,
    RateLimited,
    Rejected,
    Target,
    TargetBusy,
    Unauthorized,
    Unavailable,
)
from channels.push.adapter import FCM_SCOPE, PushChannel, fcm_error
from channels.push.settings import PushSettings
from channels.push.webpush import generate_vapid_key, public_key_from_file
from channels.retry_hint import retry_after_seconds
from tests.peers.fcm import GOOGLE_TOKEN_AUDIENCE, FcmPeer
from tests.peers.webpush import WebPushEndpoint

PAYLOADS = Path(__file__).parent.parent / "payloads" / "push"
DEVICE = "dGVzdC1kZXZpY2U6APA91bHun4MxP5egoKMwt2KZFBaFUH-1RYqx"
TITLE = "Maison Exemple · Cause identifiée"
BODY = "Perturbation sur Commande et Paiement. Retour estimé vers 14 h 30."


def rendered(body: str = BODY, title: str = TITLE) -> RenderedMessage:
    return RenderedMessage(channel="push", locale="fr", kind="update", parts=(body,), title=title)


@pytest.fixture(scope="module")
def running_fcm() -> Iterator[FcmPeer]:
    with FcmPeer() as peer:
        yield peer


@pytest.fixture
def fcm(running_fcm: FcmPeer) -> FcmPeer:
    running_fcm.reset()
    return running_fcm


def settings_for(fcm: FcmPeer, account: Path | str, vapid: Path | str = "", **extra: Any) -> PushSettings:
    values: dict[str, Any] = {
        "service_account_file": str(account),
        "fcm_base_url": fcm.base_url,
        "topic": "all-customers",
        "vapid_private_key_file": str(vapid),
        "vapid_subject": "mailto:status@shop.example",
        "ttl_seconds": 1800,
        "timeout_seconds": 5.0,
    }
    return PushSettings(**{**values, **extra})


@pytest.fixture
async def channel(
    fcm: FcmPeer, tmp_path: Path, vapid_file: Path, running_push_service: WebPushEndpoint
) -> AsyncIterator[PushChannel]:
    account = fcm.service_account(tmp_path)
    push = PushChannel(settings_for(fcm, account, vapid_file, **running_push_service.settings))
    yield push
    await push.aclose()


async def failure(push: PushChannel, address: str, message: RenderedMessage | None = None) -> DeliveryError:
    with pytest.raises(DeliveryError) as caught:
        await push.send(message or rendered(), Target(address), idempotency_key=f"1:push:{address[:20]}")
    return caught.value


# ----- FCM ---------------------------------------------------------------------------------------


async def test_topic_message_reaches_all_app_users(fcm: FcmPeer, channel: PushChannel) -> None:
    body = BODY + " Suivi : https://status.shop.example/incidents/42."
    result = await channel.send(rendered(body), Target("topic:all"), idempotency_key="42:push:topic:all")

    [record] = fcm.messages
    assert result.provider_message_id == record["name"]
    assert record["name"].startswith("projects/maison-exemple-status/messages/0:")
    message = record["message"]
    assert message["topic"] == "all-customers"
    assert "token" not in message
    assert message["notification"] == {"title": TITLE, "body": body}
    assert message["android"] == {"priority": "high", "ttl": "1800s"}
    assert message["apns"]["headers"]["apns-priority"] == "10"
    assert message["data"]["url"] == "https://status.shop.example/incidents/42"
    assert (message["data"]["kind"], message["data"]["locale"]) == ("update", "fr")
    [claims] = fcm.assertions
    assert claims["aud"] == GOOGLE_TOKEN_AUDIENCE
    assert FCM_SCOPE in claims["scope"].split()


async def test_token_message_goes_to_one_device(fcm: FcmPeer, channel: PushChannel) -> None:
    await channel.send(rendered(), Target(f"fcm:{DEVICE}"), idempotency_key="42:push:device")

    [record] = fcm.messages
    assert record["message"]["token"] == DEVICE
    assert "topic" not in record["message"]
    assert "url" not in record["message"]["data"]


async def test_unregistered_token_is_rejected(fcm: FcmPeer, channel: PushChannel) -> None:
    fcm.unregister(DEVICE)
    error = await failure(channel, f"fcm:{DEVICE}")
    assert isinstance(error, Rejected)
    assert "UNREGISTERED" in error.reason


async def test_malformed_token_is_rejected(fcm: FcmPeer, channel: PushChannel) -> None:
    error = await failure(channel, "fcm:not a token")
    assert isinstance(error, Rejected)
    assert "not a valid FCM registration token" in error.reason


async def test_quota_exhausted_is_rate_limited(fcm: FcmPeer, channel: PushChannel) -> None:
    fcm.exhaust_next(1, retry_after=17)
    error = await failure(channel, "topic:all")
    assert isinstance(error, RateLimited)
    assert error.retry_after == 17
    await channel.send(rendered(), Target("topic:all"), idempotency_key="again")  # next one passes
    assert len(fcm.messages) == 1


async def test_fcm_down_is_unavailable(fcm: FcmPeer, channel: PushChannel) -> None:
    fcm.down = True
    error = await failure(channel, "topic:all")
    assert isinstance(error, Unavailable)


async def test_unreachable_fcm_is_unavailable(fcm: FcmPeer, tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port nobody listens on once closed
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    push = PushChannel(settings_for(fcm, fcm.service_account(tmp_path), fcm_base_url=dead))
    try:
        error = await failure(push, "topic:all")
    finally:
        await push.aclose()
    assert isinstance(error, Unavailable)


async def test_twenty_concurrent_sends_fetch_one_token(fcm: FcmPeer, channel: PushChannel) -> None:
    sends = [
        channel.send(rendered(), Target(f"fcm:{DEVICE}{i:02d}"), idempotency_key=f"42:push:{i}")
        for i in range(20)
    ]
    results = await asyncio.wait_for(asyncio.gather(*sends), timeout=30)

    assert fcm.token_requests == 1
    assert len({r.provider_message_id for r in results}) == 20
    assert fcm.wait_for(20, timeout=5)


async def test_revoked_token_is_renewed_once(fcm: FcmPeer, channel: PushChannel) -> None:
    await channel.send(rendered(), Target("topic:all"), idempotency_key="1")
    fcm.revoke_tokens()
    await channel.send(rendered(), Target("topic:all"), idempotency_key="2")
    assert fcm.token_requests == 2
    assert len(fcm.messages) == 2


@pytest.mark.parametrize(
    ("make_account", "expected"),
    [
        (lambda peer, tmp: tmp / "missing.json", "does not exist"),
        (lambda peer, tmp: _write(tmp / "broken.json", "{not json"), "not a valid service-account JSON"),
        (lambda peer, tmp: peer.service_account(tmp, registered=False), "Invalid JWT Signature"),
    ],
    ids=["missing-file", "not-json", "unknown-key"],
)
async def test_bad_service_account_is_unauthorized(
    fcm: FcmPeer, tmp_path: Path, make_account: Any, expected: str
) -> None:
    push = PushChannel(settings_for(fcm, make_account(fcm, tmp_path)))
    try:
        error = await failure(push, "topic:all")
    finally:
        await push.aclose()
    assert isinstance(error, Unauthorized)
    assert error.reason.startswith("the service account cannot send:")
    assert expected in error.reason
    assert fcm.messages == []


async def test_token_endpoint_refusal_is_unauthorized(fcm: FcmPeer, channel: PushChannel) -> None:
    fcm.refuse_tokens = True
    error = await failure(channel, "topic:all")
    assert isinstance(error, Unauthorized)
    assert "invalid_grant" in error.reason


@pytest.mark.parametrize(
    ("payload", "status", "kind"),
    [
        ("fcm_unregistered.json", 404, Rejected),
        ("fcm_invalid_token.json", 400, Rejected),
        ("fcm_quota_exceeded.json", 429, RateLimited),
        ("fcm_unavailable.json", 503, Unavailable),
        ("fcm_unauthenticated.json", 401, Unauthorized),
        ("fcm_permission_denied.json", 403, Unauthorized),
    ],
)
def test_recorded_fcm_errors_map_to_the_error_tree(payload: str, status: int, kind: type) -> None:
    error = fcm_error(status, (PAYLOADS / payload).read_bytes(), {})
    assert type(error) is kind
    assert len(error.reason) <= 200


def test_unavailable_with_retry_after_and_gateway_html() -> None:
    error = fcm_error(503, (PAYLOADS / "fcm_unavailable.json").read_bytes(), {"retry-after": "12"})
    assert isinstance(error, RateLimited) and error.retry_after == 12
    assert isinstance(fcm_error(502, b"<html>Bad Gateway</html>", {}), Unavailable)
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
    assert retry_after_seconds("soon", default=5.0) == 5.0


async def test_unknown_target_and_empty_body_are_rejected(channel: PushChannel) -> None:
    assert isinstance(await failure(channel, "sms:+33600000000"), Rejected)
    assert isinstance(await failure(channel, "topic:all", rendered(body=" ")), Rejected)
    assert isinstance(await failure(channel, "topic:bad topic!"), Rejected)
    assert channel.parse_inbound(b"{}", {}) == []


# ----- Web Push ----------------------------------------------------------------------------------


async def test_web_push_is_encrypted_signed_and_urgent(
    push_service: WebPushEndpoint, fcm: FcmPeer, tmp_path: Path
) -> None:
    vapid = tmp_path / "vapid.pem"
    public_key = generate_vapid_key(vapid)
    subscription = push_service.subscribe(application_server_key=public_key)
    push = PushChannel(settings_for(fcm, "", vapid, **push_service.settings))
    body = BODY + " Détails : https://status.shop.example/incidents/42"
    before = len(push_service.records)
    try:
        result = await push.send(
            rendered(body), Target("webpush:" + json.dumps(subscription)), idempotency_key="42:push:browser"
        )
    finally:
        await push.aclose()

    assert push_service.wait_for(before + 1, timeout=5)
    record = push_service.records[-1]
    assert record.payload == {"title": TITLE, "body": body, "url": "https://status.shop.example/incidents/42"}
    assert (record.urgency, record.ttl) == ("high", 1800)
    assert record.vapid_key == public_key
    assert record.vapid_claims["sub"] == "mailto:status@shop.example"
    assert record.vapid_claims["aud"] == push_service.origin
    assert result.provider_message_id.startswith(f"{push_service.origin}/m/")
    assert fcm.messages == []  # a browser target never touches FCM


async def test_expired_subscription_is_rejected(push_service: WebPushEndpoint, channel: PushChannel) -> None:
    subscription = push_service.subscribe()
    push_service.expire(subscription)
    error = await failure(channel, "webpush:" + json.dumps(subscription))
    assert isinstance(error, Rejected)
    assert error.reason == "browser subscription expired"


async def test_push_service_429_defers_that_subscription_only(
    push_service: WebPushEndpoint, channel: PushChannel
) -> None:
    push_service.exhaust_next(1, retry_after="9")
    error = await failure(channel, "webpush:" + json.dumps(push_service.subscribe()))
    assert isinstance(error, TargetBusy)  # the endpoint is the subscriber's: never the whole channel
    assert error.retry_after == 9


async def test_subscription_made_with_another_key_is_rejected(
    push_service: WebPushEndpoint, channel: PushChannel, tmp_path: Path
) -> None:
    other = generate_vapid_key(tmp_path / "other.pem")
    error = await failure(
        channel, "webpush:" + json.dumps(push_service.subscribe(application_server_key=other))
    )
    assert isinstance(error, Rejected)
    assert "403" in error.reason


async def test_push_service_down_is_unavailable(push_service: WebPushEndpoint, channel: PushChannel) -> None:
    push_service.down = True
    error = await failure(channel, "webpush:" + json.dumps(push_service.subscribe()))
    assert isinstance(error, Unavailable)


@pytest.mark.parametrize(
    "subscription",
    [
        "{not json",
        json.dumps({"endpoint": "https://push.example/x"}),
        json.dumps({"endpoint": "http://push.example/x", "keys": {"p256dh": "BAAA", "auth": "AAAA"}}),
    ],
    ids=["not-json", "no-keys", "plain-http-remote"],
)
async def test_unusable_subscription_is_rejected(channel: PushChannel, subscription: str) -> None:
    error = await failure(channel, "webpush:" + subscription)
    assert isinstance(error, Rejected)
    assert error.reason.startswith("invalid browser subscription")


async def test_missing_vapid_key_is_unauthorized_and_not_created(
    push_service: WebPushEndpoint, fcm: FcmPeer, tmp_path: Path
) -> None:
    missing = tmp_path / "nope.pem"
    push = PushChannel(settings_for(fcm, "", missing, **push_service.settings))
    try:
        error = await failure(push, "webpush:" + json.dumps(push_service.subscribe()))
    finally:
        await push.aclose()
    assert isinstance(error, Unauthorized)
    assert not missing.exists()  # py_vapid's from_file would have generated one silently


def test_generate_vapid_key_writes_a_private_pem(tmp_path: Path) -> None:
    path = tmp_path / "vapid.pem"
    public_key = generate_vapid_key(path)

    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert path.read_text().startswith("-----BEGIN PRIVATE KEY-----")
    assert public_key_from_file(path) == public_key
    assert len(public_key) == 87 and "=" not in public_key  # 65 bytes, URL-safe, unpadded
    with pytest.raises(FileExistsError):
        generate_vapid_key(path)
    assert public_key_from_file(path) == public_key


# ----- check and secrets -------------------------------------------------------------------------


async def test_check_ok(fcm: FcmPeer, channel: PushChannel) -> None:
    result = await channel.check()
    assert result.ok, result.detail
    assert "FCM token for project maison-exemple-status" in result.detail
    assert "Web Push VAPID key" in result.detail


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"service_account_file": "", "vapid_private_key_file": ""}, "no push credentials"),
        ({"service_account_file": "/nonexistent/sa.json"}, "does not exist"),
        ({"vapid_private_key_file": "/nonexistent/vapid.pem"}, "VAPID key file"),
        ({"vapid_subject": "status@shop.example"}, "VAPID subject"),
    ],
    ids=["nothing", "no-account-file", "no-vapid-file", "bad-subject"],
)
async def test_check_not_ok(
    fcm: FcmPeer, tmp_path: Path, vapid_file: Path, overrides: dict[str, str], expected: str
) -> None:
    push = PushChannel(settings_for(fcm, fcm.service_account(tmp_path), vapid_file, **overrides))
    try:
        result = await push.check()
    finally:
        await push.aclose()
    assert not result.ok
    assert expected in result.detail
    assert result.fix


async def test_check_reports_refused_token(fcm: FcmPeer, channel: PushChannel) -> None:
    fcm.refuse_tokens = True
    result = await channel.check()
    assert not result.ok
    assert "invalid_grant" in result.detail


async def test_no_secret_in_repr_or_reasons(
    fcm: FcmPeer, push_service: WebPushEndpoint, channel: PushChannel, tmp_path: Path, vapid_file: Path
) -> None:
    await channel.send(rendered(), Target("topic:all"), idempotency_key="1")
    issued = fcm.issued_tokens()
    reasons = []
    fcm.unregister(DEVICE)
    reasons.append((await failure(channel, f"fcm:{DEVICE}")).reason)
    fcm.revoke_tokens()
    fcm.refuse_tokens = True
    reasons.append((await failure(channel, "topic:all")).reason)
    subscription = push_service.subscribe()
    push_service.expire(subscription)
    reasons.append((await failure(channel, "webpush:" + json.dumps(subscription))).reason)
    reasons.append((await channel.check()).detail)

    account = json.loads((tmp_path / "sa.json").read_text())
    secrets = [*issued, account["private_key"][40:80], subscription["keys"]["auth"]]
    secrets.append(vapid_file.read_text().splitlines()[1])
    shown = " ".join([repr(channel), *reasons])
    assert issued
    for secret in secrets:
        assert secret not in shown


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path
