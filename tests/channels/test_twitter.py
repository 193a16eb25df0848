"""TwitterChannel (tweepy AsyncClient) against a fake X API v2 over real HTTPS (tests/peers/x_api.py)."""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from sqlmodel import select

from broadcaster.db import SessionFactory
from broadcaster.inbox.inbound import Poller, load_cursor
from broadcaster.message import RenderedMessage
from broadcaster.models import InboundRecord
from channels.base import Channel, RateLimited, Rejected, Reply, Replying, Target, Unauthorized, Unavailable
from channels.twitter.adapter import TwitterChannel, parse_dm_events, parse_mentions
from channels.twitter.settings import TwitterSettings
from channels.twitter.transport import PostBudget
from tests.peers.x_api import XApiPeer

PAYLOADS = Path(__file__).parent.parent / "payloads" / "twitter"
NOW = 1_795_000_000.0  # a fixed epoch second for the channel's clock


class Clock:
    """An injectable epoch clock: tests move time instead of sleeping."""

    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def settings_for(peer: XApiPeer, *, ca_file: str | None = None, **overrides: Any) -> TwitterSettings:
    keys: dict[str, Any] = {name: SecretStr(value) for name, value in peer.credentials.items()}
    for name in list(overrides):
        if name in keys:
            value = overrides.pop(name)
            keys[name] = SecretStr(value) if value is not None else None
    return TwitterSettings(
        api_base_url=peer.base_url,
        ca_file=peer.ca_file if ca_file is None else ca_file,
        timeout_seconds=5.0,
        **keys,
        **overrides,
    )


def rendered(*parts: str) -> RenderedMessage:
    return RenderedMessage(channel="twitter", locale="fr", kind="update", parts=parts)


def answer(text: str) -> RenderedMessage:
    return RenderedMessage(channel="twitter", locale="fr", kind="reply", parts=(text,))


def payload(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((PAYLOADS / name).read_text(encoding="utf-8"))
    return data


@pytest.fixture(scope="module")
def running_peer() -> Iterator[XApiPeer]:
    with XApiPeer() as running:
        yield running


@pytest.fixture
def peer(running_peer: XApiPeer) -> XApiPeer:
    running_peer.reset()
    return running_peer


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def channel(peer: XApiPeer, clock: Clock) -> AsyncIterator[TwitterChannel]:
    x = TwitterChannel(settings_for(peer), clock=clock)
    yield x
    await x.aclose()


# ----- threads ---------------------------------------------------------------------------------


async def test_three_parts_become_a_chained_thread(peer: XApiPeer, channel: TwitterChannel) -> None:
    parts = ("Commande et Paiement : cause identifiée. 1/3", "Votre panier est conservé. 2/3", "Désolés. 3/3")
    result = await channel.send(rendered(*parts), Target("timeline"), idempotency_key="42:twitter:timeline")

    first, second, third = peer.tweets
    assert [t["text"] for t in peer.tweets] == list(parts)
    assert (first["in_reply_to"], second["in_reply_to"], third["in_reply_to"]) == (
        "",
        first["id"],
        second["id"],
    )
    assert result.provider_message_id == third["id"]
    assert result.extra_ids == (first["id"], second["id"])


async def test_follow_up_continues_from_thread_ref(peer: XApiPeer, channel: TwitterChannel) -> None:
    opening = await channel.send(
        rendered("Incident 1/2", "Détails 2/2"), Target("timeline"), idempotency_key="a"
    )
    follow = await channel.send(
        rendered("Résolu, merci de votre patience."),
        Target("timeline", thread_ref=opening.provider_message_id),
        idempotency_key="b",
    )

    assert peer.wait_for(3, timeout=5)
    assert peer.tweets[2]["in_reply_to"] == opening.provider_message_id
    assert {t["conversation_id"] for t in peer.tweets} == {peer.tweets[0]["id"]}
    assert follow.provider_message_id == peer.tweets[2]["id"] and follow.extra_ids == ()


async def test_only_the_timeline_is_a_target(peer: XApiPeer, channel: TwitterChannel) -> None:
    with pytest.raises(Rejected, match="timeline"):
        await channel.send(rendered("Bonjour"), Target("@someone"), idempotency_key="k")
    with pytest.raises(Rejected, match="no parts"):
        await channel.send(rendered(" "), Target("timeline"), idempotency_key="k")
    assert peer.requests == []


# ----- budget and rate limits ------------------------------------------------------------------


async def test_budget_exhausted_raises_without_calling_x(peer: XApiPeer, clock: Clock) -> None:
    x = TwitterChannel(settings_for(peer, posts_per_window=4, window_seconds=900.0), clock=clock)
    try:
        await x.send(rendered("1/3", "2/3", "3/3"), Target("timeline"), idempotency_key="a")
        clock.now += 100
        requests_before = len(peer.requests)
        with pytest.raises(RateLimited) as caught:
            await x.send(rendered("1/2", "2/2"), Target("timeline"), idempotency_key="b")
        assert len(peer.requests) == requests_before
        assert caught.value.retry_after == 800.0  # the first three posts leave the window at NOW + 900

        clock.now += 800
        result = await x.send(rendered("1/2", "2/2"), Target("timeline"), idempotency_key="b")
    finally:
        await x.aclose()
    assert result.provider_message_id == peer.tweets[-1]["id"]


def test_post_budget_slides_refunds_and_refuses_oversized_threads() -> None:
    clock = Clock()
    budget = PostBudget(limit=3, window=60.0, clock=clock)
    stamp = budget.reserve(2)
    budget.refund(stamp, 1)  # one post of the reservation was never made
    assert budget.remaining() == 2
    clock.now += 10
    budget.reserve(2)
    with pytest.raises(RateLimited) as caught:
        budget.reserve(1)
    assert caught.value.retry_after == 50.0  # when the post made at 0 s leaves the window
    clock.now += 50
    assert budget.remaining() == 1
    with pytest.raises(Rejected, match="budget of 3"):
        budget.reserve(4)


async def test_failed_posts_are_given_back_to_the_budget(peer: XApiPeer, clock: Clock) -> None:
    x = TwitterChannel(settings_for(peer, posts_per_window=2), clock=clock)
    peer.forbid_writes = True
    try:
        with pytest.raises(Unauthorized):
            await x.send(rendered("1/2", "2/2"), Target("timeline"), idempotency_key="a")
        peer.forbid_writes = False
        await x.send(rendered("1/2", "2/2"), Target("timeline"), idempotency_key="a")
    finally:
        await x.aclose()
    assert len(peer.tweets) == 2


async def test_429_carries_retry_after_from_reset_header(peer: XApiPeer, channel: TwitterChannel) -> None:
    peer.rate_limit_next(1, reset_at=int(NOW) + 42)
    with pytest.raises(RateLimited) as caught:
        await channel.send(rendered("Bonjour"), Target("timeline"), idempotency_key="k")
    assert caught.value.retry_after == 42.0

    peer.rate_limit_next(1, reset_at=int(NOW) - 5)  # a reset already past: retry soon, not never
    with pytest.raises(RateLimited) as caught:
        await channel.send(rendered("Bonjour"), Target("timeline"), idempotency_key="k")
    assert caught.value.retry_after == 1.0
    assert peer.tweets == []


# ----- errors ----------------------------------------------------------------------------------


async def test_bad_credentials_are_unauthorized_and_never_shown(
    peer: XApiPeer, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    wrong_secret = "WRONG-consumer-secret-never-shown"
    x = TwitterChannel(settings_for(peer, consumer_secret=wrong_secret), clock=clock)
    caplog.set_level(logging.DEBUG)
    try:
        with pytest.raises(Unauthorized) as caught:
            await x.send(rendered("Bonjour"), Target("timeline"), idempotency_key="k")
        check = await x.check()
    finally:
        await x.aclose()

    secrets = [wrong_secret, *peer.credentials.values()]
    # The peer's own HMAC verification logs on oauthlib's signature logger: not the channel's output.
    logged = "\n".join(r.getMessage() for r in caplog.records if not r.name.endswith(".signature"))
    shown = [str(caught.value), repr(caught.value), repr(x), check.detail, check.fix, logged]
    assert not [s for s in secrets for text in shown if s in text]
    assert "consumer_key" in caught.value.reason
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    assert not check.ok and "consumer_key" in check.fix
    assert "'Authorization': '***'" in caplog.text  # tweepy logged the request, redacted


async def test_missing_credentials(peer: XApiPeer) -> None:
    x = TwitterChannel(settings_for(peer, access_token=None))
    with pytest.raises(Unauthorized, match="credentials missing"):
        await x.send(rendered("Bonjour"), Target("timeline"), idempotency_key="k")
    check = await x.check()
    assert not check.ok and "access_token" in check.fix
    assert "credentials=<unset>" in repr(x)
    assert peer.requests == []


async def test_read_only_app_is_unauthorized_write_permission(
    peer: XApiPeer, channel: TwitterChannel
) -> None:
    peer.forbid_writes = True
    with pytest.raises(Unauthorized, match="write permission"):
        await channel.send(rendered("Bonjour"), Target("timeline"), idempotency_key="k")
    customer = peer.add_user("camille_dupont", "Camille Dupont")
    with pytest.raises(Unauthorized, match="Direct Message permission"):
        await channel.send_dm(customer, "Bonjour")


@pytest.mark.parametrize("status", [400, 403])
async def test_duplicate_is_rejected_after_the_first_part(
    peer: XApiPeer, channel: TwitterChannel, status: int
) -> None:
    peer.fail_duplicates = True
    peer.duplicate_status = status
    with pytest.raises(Rejected, match="duplicate content"):
        await channel.send(
            rendered("Toujours en panne.", "Toujours en panne."), Target("timeline"), idempotency_key="k"
        )
    assert [t["text"] for t in peer.tweets] == ["Toujours en panne."]  # the first part stays posted


async def test_too_long_is_rejected(channel: TwitterChannel) -> None:
    with pytest.raises(Rejected, match="too long"):
        await channel.send(rendered("x" * 300), Target("timeline"), idempotency_key="k")


async def test_server_error_is_unavailable(peer: XApiPeer, channel: TwitterChannel) -> None:
    peer.server_error_next(1)
    with pytest.raises(Unavailable, match="503"):
        await channel.send(rendered("Bonjour"), Target("timeline"), idempotency_key="k")


async def test_peer_down_is_unavailable(peer: XApiPeer) -> None:
    with socket.socket() as closed:  # bound but not listening: connections are refused
        closed.bind(("127.0.0.1", 0))
        base = f"https://127.0.0.1:{closed.getsockname()[1]}"
        x = TwitterChannel(settings_for(peer).model_copy(update={"api_base_url": base}))
        try:
            with pytest.raises(Unavailable, match="unreachable"):
                await x.send(rendered("Bonjour"), Target("timeline"), idempotency_key="k")
            check = await x.check()
        finally:
            await x.aclose()
    assert not check.ok and "api_base_url" in check.fix


async def test_untrusted_certificate_is_unavailable_and_names_ca_file(peer: XApiPeer) -> None:
    x = TwitterChannel(settings_for(peer, ca_file=""))  # system CAs do not trust the peer's CA
    try:
        with pytest.raises(Unavailable, match="ca_file"):
            await x.send(rendered("Bonjour"), Target("timeline"), idempotency_key="k")
    finally:
        await x.aclose()
    assert peer.tweets == []


def test_base_url_must_be_bare_https() -> None:
    for url in ("http://127.0.0.1:8443", "https://proxy.example/x"):
        with pytest.raises(ValueError, match="api_base_url"):
            TwitterChannel(TwitterSettings(api_base_url=url))


# ----- transport -------------------------------------------------------------------------------


async def test_one_session_and_one_connection_for_everything(peer: XApiPeer, channel: TwitterChannel) -> None:
    assert channel.session is None  # nothing opened before the first call
    await channel.send(rendered("1/2", "2/2"), Target("timeline"), idempotency_key="a")
    session = channel.session
    await channel.send(rendered("Résolu."), Target("timeline"), idempotency_key="b")
    await channel.poll_mentions("")
    await channel.check()

    assert session is not None and channel.session is session
    assert len(peer.requests) == 6
    assert len(peer.connections) == 1  # keep-alive: one TLS handshake for six requests


async def test_session_reopens_after_aclose(peer: XApiPeer, channel: TwitterChannel) -> None:
    await channel.send(rendered("Avant"), Target("timeline"), idempotency_key="a")
    first = channel.session
    await channel.aclose()
    assert first is not None and first.closed
    await channel.send(rendered("Après"), Target("timeline"), idempotency_key="b")
    assert channel.session is not None and channel.session is not first


# ----- replies from the inbox ------------------------------------------------------------------


async def test_reply_to_tweet_and_send_dm_reach_x(peer: XApiPeer, channel: TwitterChannel) -> None:
    mention = peer.add_mention("@maison_exemple le paiement marche ?")
    reply = await channel.reply_to_tweet(mention["id"], "@client_fr Oui, depuis 14 h 20. Merci !")
    customer = peer.add_user("camille_dupont", "Camille Dupont")
    dm = await channel.send_dm(customer, "Votre commande n°10482 est bien enregistrée.")

    assert peer.tweets[-1] == {
        "id": reply.provider_message_id,
        "text": "@client_fr Oui, depuis 14 h 20. Merci !",
        "in_reply_to": mention["id"],
        "conversation_id": mention["id"],
    }
    [sent] = peer.dms
    assert sent["id"] == dm.provider_message_id
    assert (sent["participant_id"], sent["text"]) == (
        customer,
        "Votre commande n°10482 est bien enregistrée.",
    )
    with pytest.raises(Rejected, match="numeric"):
        await channel.send_dm("@camille_dupont", "Bonjour")


async def test_answer_to_a_mention_is_a_public_reply_with_the_inbound_id_form(
    peer: XApiPeer, channel: TwitterChannel
) -> None:
    peer.add_mention("@maison_exemple mon panier <vide> & ma commande ?", username="camille_dupont")
    [customer], _ = await channel.poll_mentions("")
    to = Reply(customer.conversation_key, customer.customer_handle, customer.external_id)

    result = await channel.reply(
        answer("Votre panier <b>&</b> votre commande sont gardés."), to, idempotency_key="m:1"
    )

    [posted] = peer.tweets
    assert posted["text"] == "Votre panier <b>&</b> votre commande sont gardés."
    assert f"tweet:{posted['in_reply_to']}" == customer.external_id
    assert result.provider_message_id == f"tweet:{posted['id']}" and result.extra_ids == ()
    assert isinstance(channel, Replying)


async def test_long_answer_to_a_mention_is_a_numbered_reply_chain(
    peer: XApiPeer, channel: TwitterChannel
) -> None:
    mention = peer.add_mention("@maison_exemple que se passe-t-il ?")
    sentences = [
        f"Point {i} : le paiement par carte reste perturbé chez notre prestataire." for i in range(12)
    ]
    to = Reply(mention["author_id"], "@client_fr", f"tweet:{mention['id']}")

    result = await channel.reply(answer(" ".join(sentences)), to, idempotency_key="m:2")

    chain = peer.tweets
    assert len(chain) >= 3
    assert [t["in_reply_to"] for t in chain] == [mention["id"]] + [t["id"] for t in chain[:-1]]
    assert [t["text"].rsplit(" ", 1)[1] for t in chain] == [
        f"{i}/{len(chain)}" for i in range(1, len(chain) + 1)
    ]
    assert " ".join(t["text"].rsplit(" ", 1)[0] for t in chain) == " ".join(sentences)
    assert result.provider_message_id == f"tweet:{chain[0]['id']}"
    assert result.extra_ids == tuple(f"tweet:{t['id']}" for t in chain[1:])


async def test_answer_to_a_dm_goes_to_the_sender_with_the_inbound_id_form(
    peer: XApiPeer, channel: TwitterChannel
) -> None:
    peer.add_dm("Débitée deux fois ?", username="camille_dupont")
    [customer], _ = await channel.poll_dms("")
    to = Reply(customer.conversation_key, customer.customer_handle, customer.external_id)

    result = await channel.reply(answer("Non : <b>un seul</b> débit & remboursé."), to, idempotency_key="m:3")

    [sent] = peer.dms
    assert (sent["participant_id"], sent["text"]) == (
        customer.conversation_key,
        "Non : <b>un seul</b> débit & remboursé.",
    )
    assert result.provider_message_id == f"dm:{sent['id']}"
    _, cursor = await channel.poll_dms("")  # X lists our answer among the DM events, by that id
    assert f"dm:{cursor}" == result.provider_message_id


@pytest.mark.parametrize("reference", ["comment:1", "tweet:", "dm:abc", "123", ""])
async def test_answer_with_a_bad_reference_is_rejected_without_a_call(
    peer: XApiPeer, channel: TwitterChannel, reference: str
) -> None:
    with pytest.raises(Rejected) as caught:
        await channel.reply(answer("Bonjour"), Reply("42", "@client_fr", reference), idempotency_key="m:4")
    assert repr(reference) in caught.value.reason
    assert peer.requests == []


async def test_answer_refused_by_x_maps_like_send(peer: XApiPeer, channel: TwitterChannel) -> None:
    to = Reply("42", "@client_fr", "tweet:2121588456944567049")  # deleted, or never visible to us
    with pytest.raises(Rejected, match="deleted or is not visible"):
        await channel.reply(answer("Bonjour"), to, idempotency_key="m:5")
    customer = peer.add_user("camille_dupont")
    peer.rate_limit_next(1, reset_at=int(NOW) + 30)
    with pytest.raises(RateLimited) as caught:
        await channel.reply(
            answer("Bonjour"), Reply(customer, "@camille_dupont", "dm:1"), idempotency_key="m:6"
        )
    assert caught.value.retry_after == 30.0


# ----- polling ---------------------------------------------------------------------------------


async def test_poll_mentions_returns_only_new_ones(peer: XApiPeer, channel: TwitterChannel) -> None:
    post = await channel.send(
        rendered("Paiement indisponible, désolés."), Target("timeline"), idempotency_key="a"
    )
    asked = peer.add_mention(
        "@maison_exemple Toujours impossible de payer 😩 & mon panier ?",
        username="camille_dupont",
        name="Camille Dupont",
        in_reply_to=post.provider_message_id,
        created_at=datetime(2026, 11, 14, 13, 2, 5, tzinfo=UTC),
    )
    peer.add_mention(
        "@maison_exemple is your site down?", username="jmiller_uk", name="Jamie Miller", lang="en"
    )

    first, cursor = await channel.poll_mentions("")
    assert [m.text for m in first] == [
        "@maison_exemple Toujours impossible de payer 😩 & mon panier ?",
        "@maison_exemple is your site down?",
    ]
    french = first[0]
    assert french.external_id == f"tweet:{asked['id']}"
    assert (french.customer_handle, french.customer_name) == ("@camille_dupont", "Camille Dupont")
    assert french.conversation_key == asked["author_id"]  # one conversation per customer
    assert french.reply_to == post.provider_message_id
    assert (french.language, french.channel) == ("fr", "twitter")
    assert french.received_at == datetime(2026, 11, 14, 13, 2, 5, tzinfo=UTC)
    assert cursor == first[-1].external_id.removeprefix("tweet:")

    newer = peer.add_mention("@maison_exemple merci, ça remarche !", username="camille_dupont")
    second, cursor2 = await channel.poll_mentions(cursor)
    assert [m.external_id for m in second] == [f"tweet:{newer['id']}"]
    third, cursor3 = await channel.poll_mentions(cursor2)
    assert third == [] and cursor3 == cursor2


async def test_poll_mentions_follows_pages_since_the_cursor(peer: XApiPeer, channel: TwitterChannel) -> None:
    peer.page_size = 5
    before = peer.add_mention("déjà lu")
    written = [peer.add_mention(f"@maison_exemple question {i}") for i in range(12)]

    found, cursor = await channel.poll_mentions(before["id"])
    assert [m.external_id for m in found] == [f"tweet:{t['id']}" for t in written]
    assert cursor == written[-1]["id"]

    latest, _ = await channel.poll_mentions("")  # no cursor yet: the latest page only, no backfill
    assert [m.external_id for m in latest] == [f"tweet:{t['id']}" for t in written[-5:]]


async def test_poll_dms_skips_our_own(peer: XApiPeer, channel: TwitterChannel) -> None:
    incoming = peer.add_dm("Bonjour, ma commande a été débitée deux fois ?", username="camille_dupont")
    customer = incoming["sender_id"]
    ours = await channel.send_dm(customer, "Nous vérifions, merci de votre patience.")

    found, cursor = await channel.poll_dms("")
    [message] = found
    assert message.external_id == f"dm:{incoming['id']}"
    assert message.text == "Bonjour, ma commande a été débitée deux fois ?"
    assert message.customer_handle == "@camille_dupont"
    assert message.conversation_key == customer  # the sender: what a DM answer is sent to
    assert cursor == ours.provider_message_id  # our own reply moves the cursor

    later = peer.add_dm("C'est bon, merci !", username="camille_dupont")
    again, cursor2 = await channel.poll_dms(cursor)
    assert [m.external_id for m in again] == [f"dm:{later['id']}"] and cursor2 == later["id"]


async def test_poll_rejects_a_bad_cursor(channel: TwitterChannel) -> None:
    with pytest.raises(ValueError, match="numeric"):
        await channel.poll_mentions("tweet:123")


# ----- check, repr, inbound --------------------------------------------------------------------


async def test_check_ok(channel: TwitterChannel) -> None:
    result = await channel.check()
    assert result.ok and result.detail == "ok: @maison_exemple"


async def test_check_read_only_app_is_still_ok(peer: XApiPeer, channel: TwitterChannel) -> None:
    peer.forbid_writes = True  # GET /2/users/me needs read access only
    assert (await channel.check()).ok


async def test_unreadable_ca_file_is_a_config_error(peer: XApiPeer, tmp_path: Path) -> None:
    x = TwitterChannel(settings_for(peer, ca_file=str(tmp_path / "missing.pem")))
    check = await x.check()
    with pytest.raises(Unauthorized, match="ca_file"):
        await x.send(rendered("Bonjour"), Target("timeline"), idempotency_key="k")
    assert not check.ok and "readable PEM" in check.fix
    assert x.session is None and peer.requests == []


def test_repr_has_no_secret(peer: XApiPeer) -> None:
    x = TwitterChannel(settings_for(peer))
    assert isinstance(x, Channel)
    text = repr(x)
    assert "credentials=<set>" in text
    assert not [secret for secret in peer.credentials.values() if secret in text]


def test_parse_inbound_is_empty_because_x_is_polled(peer: XApiPeer) -> None:
    assert TwitterChannel(settings_for(peer)).parse_inbound(b'{"data": []}', {}) == []


# ----- recorded payloads -----------------------------------------------------------------------


def test_parse_recorded_mentions() -> None:
    data = payload("mentions.json")
    newest, older = parse_mentions(data)

    assert older.external_id == "tweet:2121589484549050514"
    assert older.conversation_key == "1452183629364871170"  # the author
    assert older.reply_to == "2121588456944567049"
    assert (older.customer_handle, older.customer_name) == ("@camille_dupont", "Camille Dupont")
    assert "livraison offerte & le code promo" in older.text
    assert older.received_at == datetime(2026, 11, 14, 13, 2, 5, tzinfo=UTC)
    assert older.language == "fr" and older.raw == data["data"][1]
    assert newest.text == "@maison_exemple is your site down? checkout keeps spinning >_<"
    assert (newest.reply_to, newest.conversation_key) == ("", "98765432")
    assert parse_mentions(data, me_id="98765432") == [older]


def test_parse_recorded_dm_events_skips_ours() -> None:
    [message] = parse_dm_events(payload("dm_events.json"), me_id="1266712367203315712")

    assert message.external_id == "dm:2121592105989046371"
    assert message.conversation_key == "1452183629364871170"  # the sender, not the DM conversation
    assert message.customer_handle == "@camille_dupont"
    assert message.received_at == datetime(2026, 11, 14, 13, 12, 30, tzinfo=UTC)
    assert message.text.startswith("Bonjour, ma commande n°10482")


def test_created_at_falls_back_to_the_snowflake_time() -> None:
    tweet = {k: v for k, v in payload("mentions.json")["data"][1].items() if k != "created_at"}
    [message] = parse_mentions({"data": [tweet]})
    assert message.received_at == datetime(2026, 11, 14, 13, 2, 5, tzinfo=UTC)


def test_a_malformed_page_raises_and_unreadable_items_are_left_out() -> None:
    for bad in ({"data": {"id": "1"}}, [], {"data": "x"}):
        with pytest.raises(ValueError):
            parse_mentions(bad)  # type: ignore[arg-type]
    for unreadable in (
        {"data": [{"id": "abc", "author_id": "2", "text": "x"}]},
        {"data": [{"id": "²", "author_id": "2", "text": "x"}]},
        {"data": [{"id": "1" * 40, "author_id": "2", "text": "x"}]},
        {"data": [{"id": "1", "author_id": "2"}]},
        {"data": [None, 7]},
    ):
        assert parse_mentions(unreadable) == []
    [senderless] = parse_dm_events({"data": [{"id": "1", "event_type": "MessageCreate", "text": "x"}]}, "9")
    assert senderless.conversation_key == "dm:1"  # filed raw, as a conversation of its own
    assert parse_mentions({"meta": {"result_count": 0}}) == []


async def test_peer_answers_in_the_recorded_shapes(peer: XApiPeer, channel: TwitterChannel) -> None:
    post = await channel.send(rendered("Incident"), Target("timeline"), idempotency_key="a")
    peer.add_mention("@maison_exemple ?", in_reply_to=post.provider_message_id)
    peer.add_dm("Bonjour")
    [mention], _ = await channel.poll_mentions("")
    [dm], _ = await channel.poll_dms("")

    assert set(mention.raw) == set(payload("mentions.json")["data"][1])
    assert set(dm.raw) == set(payload("dm_events.json")["data"][1])


# ----- one unreadable item never blocks the others ---------------------------------------------


def test_a_partial_mentions_page_files_every_readable_mention() -> None:
    data = payload("mentions_partial.json")

    found = parse_mentions(data)

    assert [m.external_id for m in found] == [
        "tweet:2121593311820562433",
        "tweet:2121592710168625153",
        "tweet:2121591980993511425",
    ]
    fine, partial, undated = found
    assert (fine.customer_handle, fine.conversation_key) == ("@camille_dupont", "1452183629364871170")
    assert partial.conversation_key == "tweet:2121592710168625153"  # no author: a conversation of its own
    assert partial.text == "@maison_exemple toujours bloqué au paiement & pas de mail de confirmation"
    assert partial.raw == data["data"][1]
    assert undated.received_at.date() == datetime(2026, 11, 14, tzinfo=UTC).date()  # the id's own time


def test_an_unreadable_dm_event_is_skipped_and_the_others_kept(caplog: pytest.LogCaptureFixture) -> None:
    data = payload("dm_events.json")
    broken = {**data, "data": [{"id": "2121599999999999999", "event_type": "MessageCreate"}, *data["data"]]}

    [message] = parse_dm_events(broken, me_id="1266712367203315712")

    assert message.external_id == "dm:2121592105989046371"
    assert "X DM event 2121599999999999999 unreadable" in caplog.text


async def test_one_unreadable_mention_never_blocks_mention_intake(
    sessions: SessionFactory, peer: XApiPeer, channel: TwitterChannel
) -> None:
    first = peer.add_mention("@maison_exemple le site est en panne ?", username="camille_dupont")
    partial = peer.add_raw_mention({"text": "@maison_exemple toujours bloqué", "lang": "fr"})
    peer.page_errors = [payload("mentions_partial.json")["errors"][0]]
    last = peer.add_mention("@maison_exemple ça remarche, merci", username="jmiller_uk")
    poller = Poller(sessions, {"twitter:mentions": channel.poll_mentions}, interval=1)

    assert await poller.poll_once() == 3
    assert await load_cursor(sessions, "twitter:mentions") == last["id"]
    newer = peer.add_mention("@maison_exemple et ma commande ?", username="camille_dupont")
    assert await poller.poll_once() == 1

    async with sessions() as session:
        ids = sorted(r.external_id for r in await session.exec(select(InboundRecord)))
    assert ids == sorted(f"tweet:{t['id']}" for t in (first, partial, last, newer))


async def test_client_not_enrolled_is_its_own_cause(peer: XApiPeer, channel: TwitterChannel) -> None:
    peer.not_enrolled = True

    for poll in (channel.poll_mentions, channel.poll_dms):
        with pytest.raises(Unauthorized) as caught:
            await poll("")
        reason = caught.value.reason
        assert "client-not-enrolled" in reason and "Project" in reason
        assert "Appropriate Level of API Access" in reason and "permission" not in reason


async def test_two_workers_of_one_account_share_its_posting_budget_in_redis(
    peer: XApiPeer, clock: Clock, redis_url: str
) -> None:
    from broadcaster.delivery.shared_pacing import RedisPaceStore, SharedPacing

    workers = [TwitterChannel(settings_for(peer, posts_per_window=4, window_seconds=900.0)) for _ in range(2)]
    pacings = [SharedPacing(RedisPaceStore(redis_url)) for _ in workers]
    for worker, pacing in zip(workers, pacings, strict=True):
        worker.share_pacing(pacing)
    peer.forbid_writes = True
    try:
        with pytest.raises(Unauthorized):  # refused by X: both posts given back to the budget
            await workers[1].send(rendered("1/2", "2/2"), Target("timeline"), idempotency_key="z")
        peer.forbid_writes = False
        await workers[0].send(rendered("1/3", "2/3", "3/3"), Target("timeline"), idempotency_key="a")
        requests_before = len(peer.requests)
        with pytest.raises(RateLimited):  # the other worker's three posts count: 3 + 2 > 4
            await workers[1].send(rendered("1/2", "2/2"), Target("timeline"), idempotency_key="b")
        assert len(peer.requests) == requests_before
        await workers[1].send(rendered("Un seul"), Target("timeline"), idempotency_key="c")
    finally:
        for worker, pacing in zip(workers, pacings, strict=True):
            await worker.aclose()
            await pacing.aclose()
    assert len(peer.tweets) == 4
