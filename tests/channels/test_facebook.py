"""FacebookChannel against a fake Graph API over real HTTP (tests/peers/graph_api.py), and webhooks."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from broadcaster.message import RenderedMessage
from channels.base import (
    DeliveryError,
    InboundMessage,
    RateLimited,
    Rejected,
    Reply,
    Replying,
    Target,
    Unauthorized,
    Unavailable,
)
from channels.facebook.adapter import FacebookChannel
from channels.facebook.settings import FacebookSettings
from channels.facebook.webhook import parse_events, signature_is_valid, verify_subscription
from tests.peers.graph_api import GraphApiPeer

TOKEN = "EAAGm0PX4ZCpsBAPageTokenSecret123"
PAGE_ID = "104512345678901"
APP_SECRET = "3f1c0a9be2d84f6e9c7b5a4d3e2f1a0b"
PAYLOADS = Path(__file__).parent.parent / "payloads" / "facebook"
FIRST = "Paiement indisponible – Cause identifiée. Toutes nos excuses, prochain point à 15 h 00."
SECOND = "Le correctif est en cours de déploiement. Prochain point à 15 h 30."
THIRD = "Résolu : le paiement fonctionne de nouveau. Merci de votre patience !"


def settings_for(base_url: str, token: str | None = TOKEN, **overrides: Any) -> FacebookSettings:
    return FacebookSettings(
        page_id=PAGE_ID,
        page_access_token=SecretStr(token) if token is not None else None,
        app_secret=SecretStr(APP_SECRET),
        verify_token=SecretStr("verify-me"),
        graph_base_url=base_url,
        timeout_seconds=5.0,
        **overrides,
    )


def rendered(text: str) -> RenderedMessage:
    return RenderedMessage(channel="facebook", locale="fr", kind="update", parts=(text,))


def answer(text: str) -> RenderedMessage:
    return RenderedMessage(channel="facebook", locale="fr", kind="reply", parts=(text,))


def to_customer(message: InboundMessage) -> Reply:
    """Where the inbox answers a customer message parsed from a webhook."""
    return Reply(message.conversation_key, message.customer_handle, message.external_id)


def page(thread_ref: str = "") -> Target:
    return Target("page", thread_ref=thread_ref)


@pytest.fixture(scope="module")
def running_peer() -> Iterator[GraphApiPeer]:
    with GraphApiPeer(page_id=PAGE_ID, tokens={TOKEN}) as running:
        yield running


@pytest.fixture
def peer(running_peer: GraphApiPeer) -> GraphApiPeer:
    running_peer.reset()
    return running_peer


@pytest.fixture
async def channel(peer: GraphApiPeer) -> AsyncIterator[FacebookChannel]:
    fb = FacebookChannel(settings_for(peer.base_url))
    yield fb
    await fb.aclose()


def assert_no_secret(error: DeliveryError) -> None:
    for text in (error.reason, str(error), repr(error)):
        assert TOKEN not in text
        assert "access_token=" not in text or "access_token=***" in text


# ----- page posts and follow-ups ---------------------------------------------------------------


async def test_first_update_is_one_page_post(peer: GraphApiPeer, channel: FacebookChannel) -> None:
    result = await channel.send(rendered(FIRST), page(), idempotency_key="42:1:facebook:page")

    assert [p["message"] for p in peer.posts] == [FIRST]
    assert result.provider_message_id == peer.posts[0]["id"]
    assert result.provider_message_id.startswith(f"{PAGE_ID}_")
    assert peer.comments == []


async def test_follow_ups_comment_on_the_first_post(peer: GraphApiPeer, channel: FacebookChannel) -> None:
    first = await channel.send(rendered(FIRST), page(), idempotency_key="1")
    second = await channel.send(rendered(SECOND), page(first.provider_message_id), idempotency_key="2")
    third = await channel.send(rendered(THIRD), page(second.provider_message_id), idempotency_key="3")

    post_id = first.provider_message_id
    assert second.provider_message_id == third.provider_message_id == post_id
    assert len(peer.posts) == 1
    assert [(c["parent"], c["message"]) for c in peer.comments] == [(post_id, SECOND), (post_id, THIRD)]


async def test_follow_ups_as_new_posts(peer: GraphApiPeer) -> None:
    fb = FacebookChannel(settings_for(peer.base_url, follow_ups="post"))
    try:
        first = await fb.send(rendered(FIRST), page(), idempotency_key="1")
        second = await fb.send(rendered(SECOND), page(first.provider_message_id), idempotency_key="2")
    finally:
        await fb.aclose()

    assert [p["message"] for p in peer.posts] == [FIRST, SECOND]
    assert second.provider_message_id == peer.posts[1]["id"] != first.provider_message_id
    assert peer.comments == []


async def test_deleted_post_starts_a_new_one(peer: GraphApiPeer, channel: FacebookChannel) -> None:
    first = await channel.send(rendered(FIRST), page(), idempotency_key="1")
    peer.delete_object(first.provider_message_id)

    second = await channel.send(rendered(SECOND), page(first.provider_message_id), idempotency_key="2")

    assert second.provider_message_id == peer.posts[1]["id"] != first.provider_message_id
    assert peer.comments == []


async def test_every_call_uses_the_configured_graph_version(
    peer: GraphApiPeer, channel: FacebookChannel
) -> None:
    first = await channel.send(rendered(FIRST), page(), idempotency_key="1")
    await channel.send(rendered(SECOND), page(first.provider_message_id), idempotency_key="2")
    await channel.check()

    # facebook-sdk 3.1 would have used its default v2.8 without the override.
    assert {r["version"] for r in peer.requests} == {"v21.0"}
    assert peer.posts[0]["version"] == peer.comments[0]["version"] == "v21.0"


async def test_version_without_v_prefix_is_accepted(peer: GraphApiPeer) -> None:
    fb = FacebookChannel(settings_for(peer.base_url, api_version="22.0"))
    try:
        await fb.send(rendered(FIRST), page(), idempotency_key="1")
    finally:
        await fb.aclose()
    assert peer.posts[0]["version"] == "v22.0"


async def test_duplicate_status_is_rejected(peer: GraphApiPeer, channel: FacebookChannel) -> None:
    await channel.send(rendered(FIRST), page(), idempotency_key="1")
    with pytest.raises(Rejected, match="Duplicate status message"):
        await channel.send(rendered(FIRST), page(), idempotency_key="2")


async def test_empty_message_is_rejected_without_a_call(peer: GraphApiPeer, channel: FacebookChannel) -> None:
    with pytest.raises(Rejected, match="empty"):
        await channel.send(rendered("  "), page(), idempotency_key="1")
    assert peer.requests == []


# ----- errors ------------------------------------------------------------------------------------


async def test_expired_token_is_unauthorized_without_the_token(
    peer: GraphApiPeer, channel: FacebookChannel
) -> None:
    peer.expire_token()
    with pytest.raises(Unauthorized, match="page token expired or is invalid") as caught:
        await channel.send(rendered(FIRST), page(), idempotency_key="1")

    assert "Session has expired" in caught.value.reason
    assert_no_secret(caught.value)


async def test_unknown_token_is_unauthorized(peer: GraphApiPeer) -> None:
    fb = FacebookChannel(settings_for(peer.base_url, token="EAAnotAValidToken"))
    try:
        with pytest.raises(Unauthorized) as caught:
            await fb.send(rendered(FIRST), page(), idempotency_key="1")
    finally:
        await fb.aclose()
    assert "EAAnotAValidToken" not in caught.value.reason


async def test_missing_token_fails_before_any_request(peer: GraphApiPeer) -> None:
    fb = FacebookChannel(settings_for(peer.base_url, token=None))
    with pytest.raises(Unauthorized, match="page_access_token"):
        await fb.send(rendered(FIRST), page(), idempotency_key="1")
    assert peer.requests == []


@pytest.mark.parametrize("code", [4, 17, 32, 613])
async def test_rate_limit_codes(peer: GraphApiPeer, channel: FacebookChannel, code: int) -> None:
    peer.rate_limit_next(1, code=code)
    with pytest.raises(RateLimited) as caught:
        await channel.send(rendered(FIRST), page(), idempotency_key="1")

    assert caught.value.retry_after == 60.0
    result = await channel.send(rendered(FIRST), page(), idempotency_key="1")
    assert result.provider_message_id == peer.posts[0]["id"]


async def test_rate_limit_reads_the_usage_header(peer: GraphApiPeer, channel: FacebookChannel) -> None:
    peer.rate_limit_next(1, code=32, regain_minutes=5)
    with pytest.raises(RateLimited) as caught:
        await channel.send(rendered(FIRST), page(), idempotency_key="1")
    assert caught.value.retry_after == 300.0


async def test_transient_graph_error_is_unavailable(peer: GraphApiPeer, channel: FacebookChannel) -> None:
    peer.fail_next(1)
    with pytest.raises(Unavailable, match="temporarily unavailable"):
        await channel.send(rendered(FIRST), page(), idempotency_key="1")


async def test_html_outage_is_unavailable(peer: GraphApiPeer, channel: FacebookChannel) -> None:
    peer.down = True
    with pytest.raises(Unavailable, match="503") as caught:
        await channel.send(rendered(FIRST), page(), idempotency_key="1")
    assert_no_secret(caught.value)


async def test_connection_refused_is_unavailable_without_the_token(free_port: Any) -> None:
    fb = FacebookChannel(settings_for(f"http://127.0.0.1:{free_port()}"))
    try:
        with pytest.raises(Unavailable, match="unreachable") as caught:
            await fb.send(rendered(FIRST), page(), idempotency_key="1")
        result = await fb.check()
    finally:
        await fb.aclose()
    assert_no_secret(caught.value)
    assert not result.ok and TOKEN not in result.detail


async def test_token_never_logged(peer: GraphApiPeer, channel: FacebookChannel, caplog: Any) -> None:
    caplog.set_level(logging.DEBUG)
    await channel.check()  # a GET: the sdk puts access_token in the query string
    await channel.send(rendered(FIRST), page(), idempotency_key="1")

    assert "GET /v21.0/" in caplog.text  # urllib3 did log the request line
    assert TOKEN not in caplog.text


def test_repr_hides_the_token() -> None:
    fb = FacebookChannel(settings_for("https://graph.facebook.com"))
    assert TOKEN not in repr(fb)
    assert "page_access_token=<set>" in repr(fb)


# ----- inbox replies -----------------------------------------------------------------------------


async def test_reply_to_comment(peer: GraphApiPeer, channel: FacebookChannel) -> None:
    comment_id = "998877665544332_1122334455667788"
    peer.add_object(comment_id)

    result = await channel.reply_to_comment(comment_id, "Bonjour Amélie, votre commande est bien partie.")

    assert [(c["parent"], c["id"]) for c in peer.comments] == [(comment_id, result.provider_message_id)]


async def test_reply_to_missing_comment_is_rejected(peer: GraphApiPeer, channel: FacebookChannel) -> None:
    with pytest.raises(Rejected, match="not found"):
        await channel.reply_to_comment("998877665544332_404", "Bonjour")


async def test_messenger_reply(peer: GraphApiPeer, channel: FacebookChannel) -> None:
    text = "Bonjour, oui : le paiement par carte est perturbé. Prochain point à 15 h 00."
    result = await channel.send_messenger("7012345678901234", text)

    assert peer.messages == [
        {
            "psid": "7012345678901234",
            "text": text,
            "messaging_type": "RESPONSE",
            "mid": result.provider_message_id,
            "version": "v21.0",
        }
    ]


async def test_messenger_outside_window_is_rejected_clearly(
    peer: GraphApiPeer, channel: FacebookChannel
) -> None:
    peer.outside_window("7012345678901234")
    with pytest.raises(Rejected) as caught:
        await channel.send_messenger("7012345678901234", "Bonjour")

    assert caught.value.reason == (
        "Messenger: more than 24 h since the customer's last message; answer on the page instead"
    )
    assert peer.messages == []


async def test_answer_to_a_comment_replies_in_its_thread(
    peer: GraphApiPeer, channel: FacebookChannel
) -> None:
    [customer] = parse_events((PAYLOADS / "comment.json").read_bytes())
    comment_id = customer.external_id.removeprefix("comment:")
    peer.add_object(comment_id)
    text = "Bonjour Amélie,\n<b>oui</b> & votre commande est partie."

    result = await channel.reply(answer(text), to_customer(customer), idempotency_key="m:1")

    [reply] = peer.comments
    assert (reply["parent"], reply["message"]) == (comment_id, text)
    assert result.provider_message_id == f"comment:{reply['id']}"  # as a webhook would name it
    assert isinstance(channel, Replying)


async def test_answer_in_messenger_goes_to_the_sender(peer: GraphApiPeer, channel: FacebookChannel) -> None:
    [customer] = parse_events((PAYLOADS / "messenger.json").read_bytes())
    text = "Le panier <vide> & la carte : c'est réparé."

    result = await channel.reply(answer(text), to_customer(customer), idempotency_key="m:2")

    [sent] = peer.messages
    assert (sent["psid"], sent["text"], sent["messaging_type"]) == ("7012345678901234", text, "RESPONSE")
    assert result.provider_message_id == f"mid:{sent['mid']}" and result.extra_ids == ()


async def test_long_messenger_answer_is_split_in_order(peer: GraphApiPeer, channel: FacebookChannel) -> None:
    [customer] = parse_events((PAYLOADS / "messenger.json").read_bytes())
    lines = [f"Étape {i} : " + " ".join(["vérifier<&>"] * 30) for i in range(15)]
    text = "\n".join(lines)
    assert len(text) > 2 * 2000

    result = await channel.reply(answer(text), to_customer(customer), idempotency_key="m:3")

    assert len(peer.messages) == 3
    assert all(len(m["text"]) <= 2000 for m in peer.messages)
    assert "\n".join(m["text"] for m in peer.messages) == text  # cut between lines, nothing lost
    assert result.provider_message_id == f"mid:{peer.messages[0]['mid']}"
    assert result.extra_ids == tuple(f"mid:{m['mid']}" for m in peer.messages[1:])


async def test_answers_refused_by_meta_are_rejected(peer: GraphApiPeer, channel: FacebookChannel) -> None:
    [messenger] = parse_events((PAYLOADS / "messenger.json").read_bytes())
    peer.outside_window(messenger.conversation_key)
    with pytest.raises(Rejected, match="24 h"):
        await channel.reply(answer("Bonjour"), to_customer(messenger), idempotency_key="m:4")
    [comment] = parse_events((PAYLOADS / "comment.json").read_bytes())  # deleted by its author
    with pytest.raises(Rejected, match="not found"):
        await channel.reply(answer("Bonjour"), to_customer(comment), idempotency_key="m:5")
    assert peer.messages == [] and peer.comments == []


@pytest.mark.parametrize("reference", ["tweet:1", "comment:", "m_AbC", ""])
async def test_answer_with_a_bad_reference_is_rejected_without_a_call(
    peer: GraphApiPeer, channel: FacebookChannel, reference: str
) -> None:
    with pytest.raises(Rejected) as caught:
        await channel.reply(
            answer("Bonjour"), Reply("7012345678901234", "7012345678901234", reference), idempotency_key="m:6"
        )
    assert repr(reference) in caught.value.reason
    assert peer.requests == []


async def test_answer_to_a_salvaged_messenger_message_is_rejected_without_a_call(
    peer: GraphApiPeer, channel: FacebookChannel
) -> None:
    body = (PAYLOADS / "old_comment_and_messenger.json").read_bytes()
    salvaged = parse_events(body)[-1]
    to = Reply(salvaged.conversation_key, salvaged.customer_handle, salvaged.external_id)

    with pytest.raises(Rejected, match="numeric page-scoped id"):
        await channel.reply(answer("Bonjour"), to, idempotency_key="m:7")
    assert peer.requests == []


# ----- check ---------------------------------------------------------------------------------------


async def test_check_ok(peer: GraphApiPeer, channel: FacebookChannel) -> None:
    result = await channel.check()
    assert (result.ok, result.detail) == (True, "ok: page Maison Exemple")


async def test_check_expired_token_says_how_to_fix(peer: GraphApiPeer, channel: FacebookChannel) -> None:
    peer.expire_token()
    result = await channel.check()

    assert not result.ok
    assert "expired or is invalid" in result.detail
    assert "page_access_token" in result.fix
    assert TOKEN not in result.detail + result.fix


async def test_check_without_credentials() -> None:
    result = await FacebookChannel(FacebookSettings()).check()
    assert not result.ok and "page_id" in result.fix


async def test_construction_does_no_io(peer: GraphApiPeer) -> None:
    fb = FacebookChannel(settings_for(peer.base_url))
    assert peer.requests == []
    await fb.aclose()  # closing a channel that never connected is fine


# ----- webhooks --------------------------------------------------------------------------------------


def test_subscription_challenge_accepted_and_refused() -> None:
    query = {"hub.mode": "subscribe", "hub.verify_token": "verify-me", "hub.challenge": "1158201444"}
    assert verify_subscription(query, "verify-me") == "1158201444"
    assert verify_subscription({**query, "hub.verify_token": "nope"}, "verify-me") is None
    assert verify_subscription({**query, "hub.mode": "unsubscribe"}, "verify-me") is None
    assert verify_subscription({**query, "hub.verify_token": "vérifié"}, "verify-me") is None
    assert verify_subscription({"hub.mode": "subscribe", "hub.challenge": "1"}, "verify-me") is None
    assert verify_subscription({**query, "hub.verify_token": ""}, "") is None


def test_signature() -> None:
    body = (PAYLOADS / "comment.json").read_bytes()
    good = "sha256=" + hmac.new(APP_SECRET.encode(), body, hashlib.sha256).hexdigest()

    assert signature_is_valid(body, good, APP_SECRET)
    assert signature_is_valid(body, good.upper().replace("SHA256=", "sha256="), APP_SECRET)
    assert not signature_is_valid(body + b" ", good, APP_SECRET)
    assert not signature_is_valid(body, good, "another-secret")
    assert not signature_is_valid(body, None, APP_SECRET)
    assert not signature_is_valid(body, "", APP_SECRET)
    assert not signature_is_valid(body, good[len("sha256=") :], APP_SECRET)  # no prefix
    assert not signature_is_valid(body, "sha1=" + good[7:47], APP_SECRET)
    assert not signature_is_valid(body, "sha256=zz" + good[9:], APP_SECRET)
    assert not signature_is_valid(body, good[:-2], APP_SECRET)
    assert not signature_is_valid(body, good, "")


def test_parse_comment() -> None:
    [comment] = parse_events((PAYLOADS / "comment.json").read_bytes())

    assert comment.channel == "facebook"
    assert comment.external_id == "comment:998877665544332_1122334455667788"
    assert comment.conversation_key == "6543210987654321"  # the commenter: one conversation per customer
    assert comment.reply_to == "104512345678901_998877665544332"
    assert (comment.customer_handle, comment.customer_name) == ("6543210987654321", "Amélie Durand")
    assert comment.text.startswith("Toujours impossible de payer par carte")
    assert comment.received_at == datetime.fromtimestamp(1795182195, tz=UTC)


def test_parse_messenger() -> None:
    [message] = parse_events((PAYLOADS / "messenger.json").read_bytes())

    assert message.external_id.startswith("mid:m_AbCdEf")
    assert message.conversation_key == message.customer_handle == "7012345678901234"
    assert message.text == "Bonjour, le site est en panne ? Je n'arrive pas à valider mon panier."
    assert message.received_at == datetime.fromtimestamp(1795182300.123, tz=UTC)


def test_parse_skips_the_page_echoes_edits_reactions_and_receipts() -> None:
    found = parse_events((PAYLOADS / "mixed.json").read_bytes())

    assert [(m.external_id, m.reply_to) for m in found] == [
        ("comment:998877665544332_1122334455667800", "998877665544332_1122334455667788")
    ]


def test_channel_parse_inbound_delegates(channel: FacebookChannel) -> None:
    body = (PAYLOADS / "messenger.json").read_bytes()
    assert channel.parse_inbound(body, {"x-hub-signature-256": "ignored"}) == parse_events(body)


def test_other_objects_are_ignored() -> None:
    assert parse_events(json.dumps({"object": "instagram", "entry": []}).encode()) == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b"{not json", "not valid JSON"),
        (b"[]", "JSON object"),
        (b"{}", "object"),
        (b'{"object": "page"}', "entry"),
    ],
)
def test_a_body_that_is_no_delivery_names_the_field(body: bytes, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        parse_events(body)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b'{"object": "page", "entry": [{"changes": []}]}', r"entry\[0\]\.id"),
        (
            b'{"object": "page", "entry": [{"id": "1", "messaging": [{"sender": {"id": "2"}, '
            b'"timestamp": 1e30, "message": {"mid": "m_1", "text": "Bonjour"}}]}]}',
            "out of range",
        ),
        (
            b'{"object": "page", "entry": [{"id": "1", "changes": [{"field": "feed", "value": '
            b'{"item": "comment", "verb": "add", "from": {"id": "2"}, "post_id": "1_3"}}]}]}',
            r"entry\[0\]\.changes\[0\]\.value\.comment_id",
        ),
        (
            b'{"object": "page", "entry": [{"id": "1", "messaging": [{"sender": {"id": "2"}, '
            b'"timestamp": 1, "message": {"text": "Bonjour"}}]}]}',
            r"entry\[0\]\.messaging\[0\]\.message\.mid",
        ),
    ],
)
def test_an_unreadable_item_is_logged_naming_the_field(
    body: bytes, field: str, caplog: pytest.LogCaptureFixture
) -> None:
    found = parse_events(body)

    assert [m.external_id for m in found] == (["mid:m_1"] if b"1e30" in body else [])  # id and text: kept
    assert re.search(f"Facebook webhook item unreadable: .*{field}", caplog.text)


def test_one_unreadable_item_never_rejects_the_delivery(caplog: pytest.LogCaptureFixture) -> None:
    found = parse_events((PAYLOADS / "old_comment_and_messenger.json").read_bytes())

    assert [m.external_id for m in found] == [
        "comment:998877665544332_1122334455667811",  # the old shape: sender_id / sender_name
        "mid:m_QrStUvWxYz0123456789-aBcDeFgHiJkLmNoPqRsTuVwXyZAbCdEfGhIjKlMnOp",
        "mid:m_ZyXwVuTsRqPoNmLkJiHgFeDcBa9876543210-zYxWvUtSrQpOnMlKjIhGfEdCbA",  # salvaged
    ]
    old, messenger, salvaged = found
    assert (old.conversation_key, old.customer_name) == ("5550001112223334", "Louis Martin")
    assert old.text == "Toujours pas de confirmation de commande depuis ce matin"
    assert messenger.conversation_key == "7012345678901234"
    assert salvaged.conversation_key == salvaged.external_id
    assert salvaged.text == "Allô ? Le site ne répond plus"
    assert "entry[0].changes[2].value.comment_id is missing" in caplog.text
    assert "entry[1] is not an object" in caplog.text
    assert "entry[2].messaging[1].timestamp is missing" in caplog.text
