"""TelegramChannel against a fake Bot API over real HTTP (tests/peers/telegram.py)."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from broadcaster.message import RenderedMessage
from channels.base import (
    RateLimited,
    Rejected,
    Reply,
    Replying,
    Target,
    TargetBusy,
    Unauthorized,
    Unavailable,
)
from channels.telegram.adapter import TelegramChannel, _ChatPacer
from channels.telegram.settings import TelegramSettings
from tests.peers.telegram import TelegramPeer

TOKEN = "123:TEST"
PAYLOADS = Path(__file__).parent.parent / "payloads" / "telegram"


def settings_for(base_url: str, token: str | None = TOKEN, interval: float = 0.0) -> TelegramSettings:
    return TelegramSettings(
        token=SecretStr(token) if token is not None else None,
        base_url=base_url,
        per_chat_interval_seconds=interval,
        timeout_seconds=5.0,
    )


def rendered(*parts: str) -> RenderedMessage:
    return RenderedMessage(channel="telegram", locale="fr", kind="update", parts=parts)


def answer(text: str) -> RenderedMessage:
    return RenderedMessage(channel="telegram", locale="fr", kind="reply", parts=(text,))


def to_customer(chat: int, message_id: int) -> Reply:
    """Where the inbox answers a customer message parsed from a webhook (see parse_inbound)."""
    return Reply(
        conversation_key=str(chat), customer_handle="amelie_durand", in_reply_to=f"{chat}:{message_id}"
    )


@pytest.fixture(scope="module")
def running_peer() -> Iterator[TelegramPeer]:
    with TelegramPeer(valid_tokens={TOKEN}) as running:
        yield running


@pytest.fixture
def peer(running_peer: TelegramPeer) -> TelegramPeer:
    running_peer.reset()
    return running_peer


@pytest.fixture
async def channel(peer: TelegramPeer) -> AsyncIterator[TelegramChannel]:
    tg = TelegramChannel(settings_for(peer.base_url))
    yield tg
    await tg.aclose()


async def test_two_parts_arrive_in_order_as_html(peer: TelegramPeer, channel: TelegramChannel) -> None:
    first = "<b>Incident en cours</b> : le paiement est indisponible, désolés pour la gêne."
    second = "Commandes par téléphone &amp; sur la marketplace. Prochaine mise à jour à 15 h 00."
    result = await channel.send(
        rendered(first, second), Target("123456"), idempotency_key="1:telegram:123456"
    )

    assert (result.provider_message_id, result.extra_ids) == ("1", ("2",))
    assert peer.texts("123456") == [first, second]
    assert {m["parse_mode"] for m in peer.messages} == {"HTML"}
    assert all(m["link_preview_options"] == {"is_disabled": True} for m in peer.messages)


async def test_channel_post_by_username(peer: TelegramPeer, channel: TelegramChannel) -> None:
    result = await channel.send(
        rendered("Résolu, merci de votre patience."),
        Target("@shop_status"),
        idempotency_key="2:telegram:@shop_status",
    )

    assert result.provider_message_id == "1"
    assert peer.texts("@shop_status") == ["Résolu, merci de votre patience."]


async def test_many_chats_in_parallel(peer: TelegramPeer, channel: TelegramChannel) -> None:
    sends = [
        channel.send(rendered(f"n° {i}"), Target(str(1000 + i)), idempotency_key=str(i)) for i in range(40)
    ]
    results = await asyncio.gather(*sends)

    assert peer.wait_for(40, timeout=5)
    assert {r.provider_message_id for r in results} == {"1"}  # ids count per chat


async def test_same_chat_is_spaced_and_not_interleaved(peer: TelegramPeer) -> None:
    interval = 0.1
    tg = TelegramChannel(settings_for(peer.base_url, interval=interval))
    try:
        await asyncio.gather(
            tg.send(rendered("a1", "a2"), Target("42"), idempotency_key="a"),
            tg.send(rendered("b1", "b2"), Target("42"), idempotency_key="b"),
        )
    finally:
        await tg.aclose()

    texts = peer.texts("42")
    assert texts in (["a1", "a2", "b1", "b2"], ["b1", "b2", "a1", "a2"])
    # A lower bound the pacer guarantees (it waits `interval` after each response), not a timing.
    received = [m["received"] for m in peer.messages]
    assert all(later - earlier >= interval for earlier, later in zip(received, received[1:], strict=False))


def test_pacer_memory_is_bounded() -> None:
    pacer = _ChatPacer(interval=0.0, max_chats=3)

    async def touch_all() -> None:
        async with pacer.hold("busy"):  # a chat being sent to is never forgotten
            for chat in range(10):
                async with pacer.hold(str(chat)):
                    assert str(chat) in pacer._slots  # held: remembered while in use
            assert "busy" in pacer._slots

    asyncio.run(touch_all())
    assert len(pacer._slots) <= 3


class _WalkCounting(OrderedDict[str, Any]):
    walked = 0

    def __iter__(self) -> Iterator[str]:
        for key in super().__iter__():
            self.walked += 1
            yield key

    def items(self) -> Any:
        self.walked += len(self)
        return super().items()


def test_a_new_chat_past_the_memory_bound_costs_constant_work_not_a_walk_of_every_chat() -> None:
    pacer = _ChatPacer(interval=0.0, max_chats=1_000)
    pacer._slots = slots = _WalkCounting()

    async def send_to_new_chats() -> int:
        held = 0
        for chat in range(5_000):
            async with pacer.hold(str(chat)):
                held += 1
        return held

    assert asyncio.run(send_to_new_chats()) == 5_000  # every chat got its turn
    assert len(slots) <= 1_000
    assert slots.walked <= 5_000 * 8  # at most a few slots looked at per send, whatever the table size


async def test_rate_limited_carries_retry_after(peer: TelegramPeer, channel: TelegramChannel) -> None:
    peer.rate_limit_next(1, retry_after=3)
    with pytest.raises(RateLimited) as caught:
        await channel.send(rendered("Bonjour"), Target("123456"), idempotency_key="k")

    assert caught.value.retry_after == 3.0
    result = await channel.send(rendered("Bonjour"), Target("123456"), idempotency_key="k")
    assert result.provider_message_id == "1"


async def test_blocked_chat_is_rejected(peer: TelegramPeer, channel: TelegramChannel) -> None:
    peer.block(777)
    with pytest.raises(Rejected, match="blocked"):
        await channel.send(rendered("Bonjour"), Target("777"), idempotency_key="k")


async def test_unknown_chat_is_rejected(peer: TelegramPeer, channel: TelegramChannel) -> None:
    peer.known_chats = {"123456"}
    with pytest.raises(Rejected, match="(?i)chat not found"):
        await channel.send(rendered("Bonjour"), Target("999"), idempotency_key="k")


async def test_unparsable_html_is_rejected_with_reason(peer: TelegramPeer, channel: TelegramChannel) -> None:
    with pytest.raises(Rejected, match="(?i)can't parse entities"):
        await channel.send(rendered("Fish & chips <script>"), Target("123456"), idempotency_key="k")


async def test_later_part_failure_raises_after_first_was_sent(
    peer: TelegramPeer, channel: TelegramChannel
) -> None:
    with pytest.raises(Rejected):
        await channel.send(rendered("ok", "<oops>"), Target("123456"), idempotency_key="k")
    assert peer.texts("123456") == ["ok"]


async def test_wrong_token_is_unauthorized_and_never_shown(
    peer: TelegramPeer, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "987654:SECRET-never-shown"
    tg = TelegramChannel(settings_for(peer.base_url, token=secret))
    caplog.set_level(logging.DEBUG)
    try:
        with pytest.raises(Unauthorized) as caught:
            await tg.send(rendered("Bonjour"), Target("123456"), idempotency_key="k")
        check = await tg.check()
    finally:
        await tg.aclose()

    assert secret not in str(caught.value)
    assert secret not in repr(caught.value)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    assert secret not in repr(tg)
    assert secret not in check.detail + check.fix
    assert secret not in caplog.text
    assert "/bot***" in caplog.text  # PTB logs the base URL, redacted


async def test_missing_token_is_unauthorized(peer: TelegramPeer) -> None:
    tg = TelegramChannel(settings_for(peer.base_url, token=None))
    with pytest.raises(Unauthorized, match="channels.telegram.token"):
        await tg.send(rendered("Bonjour"), Target("1"), idempotency_key="k")
    assert not (await tg.check()).ok
    assert "token=<unset>" in repr(tg)


async def test_gateway_down_is_unavailable(peer: TelegramPeer, channel: TelegramChannel) -> None:
    peer.down = True
    with pytest.raises(Unavailable):
        await channel.send(rendered("Bonjour"), Target("123456"), idempotency_key="k")


async def test_connection_refused_is_unavailable() -> None:
    with socket.socket() as closed:  # bound but not listening: connections are refused
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        tg = TelegramChannel(settings_for(f"http://127.0.0.1:{port}/bot"))
        try:
            with pytest.raises(Unavailable, match="unreachable"):
                await tg.send(rendered("Bonjour"), Target("1"), idempotency_key="k")
            check = await tg.check()
        finally:
            await tg.aclose()
    assert not check.ok and "base_url" in check.fix


async def test_check_ok(channel: TelegramChannel) -> None:
    result = await channel.check()
    assert result.ok
    assert result.detail == "ok: @shop_status_bot"


async def test_check_bad_token(peer: TelegramPeer) -> None:
    tg = TelegramChannel(settings_for(peer.base_url, token="1:WRONG"))
    try:
        result = await tg.check()
    finally:
        await tg.aclose()
    assert not result.ok
    assert result.detail == "Telegram refused the token: set channels.telegram.token"


# ----- answers to customers ----------------------------------------------------------------------


async def test_answer_quotes_the_customer_in_plain_text(peer: TelegramPeer, channel: TelegramChannel) -> None:
    asked = peer.add_customer_message(5512873340)
    text = "Bonjour Amélie,\n<b>Fish & chips</b> &amp; 3 < 5 : votre commande est partie."

    result = await channel.reply(answer(text), to_customer(5512873340, asked), idempotency_key="m:1")

    [sent] = peer.messages
    assert (sent["chat_id"], sent["text"], sent["parse_mode"]) == ("5512873340", text, None)
    assert sent["reply_to_message_id"] == asked
    assert sent["reply_parameters"] == {"message_id": asked, "allow_sending_without_reply": True}
    assert result.provider_message_id == f"5512873340:{sent['message_id']}"
    assert result.extra_ids == ()
    assert isinstance(channel, Replying)


async def test_answer_id_has_the_inbound_external_id_form(channel: TelegramChannel) -> None:
    update = json.loads((PAYLOADS / "message.json").read_bytes())
    [customer] = channel.parse_inbound(json.dumps(update).encode(), {})
    to = Reply(customer.conversation_key, customer.customer_handle, customer.external_id)

    result = await channel.reply(answer("Bonjour Amélie"), to, idempotency_key="m:2")

    # Our answer, seen again in an update (a group, an edit), is the external id we were given.
    message_id = int(result.provider_message_id.partition(":")[2])
    echoed = {**update, "message": {**update["message"], "message_id": message_id}}
    assert result.provider_message_id == channel.parse_inbound(json.dumps(echoed).encode(), {})[0].external_id
    assert result.provider_message_id.startswith(f"{customer.conversation_key}:")


async def test_long_answer_is_split_in_order_and_only_the_first_part_quotes(
    peer: TelegramPeer, channel: TelegramChannel
) -> None:
    asked = peer.add_customer_message(42)
    paragraphs = [f"Paragraphe {i} : " + " ".join(["détail<&>"] * 60) for i in range(20)]
    text = "\n\n".join(paragraphs)
    assert len(text) > 3 * 4096

    result = await channel.reply(answer(text), to_customer(42, asked), idempotency_key="m:3")

    sent = [m for m in peer.messages if m["chat_id"] == "42"]
    assert len(sent) == 4
    assert all(len(m["text"]) <= 4096 and m["parse_mode"] is None for m in sent)
    assert "\n\n".join(m["text"] for m in sent) == text  # cut between paragraphs, nothing lost
    assert [m["reply_to_message_id"] for m in sent] == [asked, None, None, None]
    assert result.provider_message_id == f"42:{sent[0]['message_id']}"
    assert result.extra_ids == tuple(f"42:{m['message_id']}" for m in sent[1:])


async def test_answer_to_a_deleted_message_is_sent_without_quote(
    peer: TelegramPeer, channel: TelegramChannel
) -> None:
    result = await channel.reply(answer("Bonjour"), to_customer(77, 12), idempotency_key="m:4")

    [sent] = peer.messages
    assert sent["reply_to_message_id"] is None and sent["text"] == "Bonjour"
    assert result.provider_message_id == "77:1"


async def test_answer_to_a_customer_who_blocked_the_bot_is_rejected(
    peer: TelegramPeer, channel: TelegramChannel
) -> None:
    asked = peer.add_customer_message(777)
    peer.block(777)
    with pytest.raises(Rejected, match="blocked"):
        await channel.reply(answer("Bonjour"), to_customer(777, asked), idempotency_key="m:5")


async def test_answer_flood_control_is_rate_limited(peer: TelegramPeer, channel: TelegramChannel) -> None:
    peer.rate_limit_next(1, retry_after=7)
    with pytest.raises(RateLimited) as caught:
        await channel.reply(answer("Bonjour"), to_customer(5, 1), idempotency_key="m:6")
    assert caught.value.retry_after == 7.0


@pytest.mark.parametrize(
    ("to", "needle"),
    [
        (Reply("42", "amelie", "tweet:123"), "tweet:123"),
        (Reply("42", "amelie", ""), "<chat_id>:<message_id>"),
        (Reply("42", "amelie", "43:7"), "not in chat 42"),
        (Reply("", "amelie", "42:7"), "conversation_key"),
    ],
)
async def test_answer_with_a_bad_reference_is_rejected_without_a_call(
    peer: TelegramPeer, channel: TelegramChannel, to: Reply, needle: str
) -> None:
    with pytest.raises(Rejected, match=needle):
        await channel.reply(answer("Bonjour"), to, idempotency_key="m:7")
    assert peer.requests == 0


async def test_empty_answer_is_rejected(peer: TelegramPeer, channel: TelegramChannel) -> None:
    with pytest.raises(Rejected, match="empty"):
        await channel.reply(answer(" \n "), to_customer(42, 1), idempotency_key="m:8")
    assert peer.requests == 0


def test_peer_accepts_json_bodies_and_counts_requests(peer: TelegramPeer) -> None:
    url = f"{peer.base_url}{TOKEN}/sendMessage"
    response = httpx.post(url, json={"chat_id": 5, "text": "Bonjour &amp; merci", "parse_mode": "HTML"})

    assert response.status_code == 200
    body = response.json()
    assert body["ok"] and body["result"]["chat"] == {"id": 5, "type": "private", "first_name": "Client"}
    assert body["result"]["text"] == "Bonjour & merci"
    assert peer.texts(5) == ["Bonjour &amp; merci"] and peer.requests == 1


def test_parse_inbound_recorded_update() -> None:
    body = (PAYLOADS / "message.json").read_bytes()
    tg = TelegramChannel(settings_for("http://127.0.0.1:9/bot"))

    [msg] = tg.parse_inbound(body, {"content-type": "application/json"})

    assert msg.channel == "telegram"
    assert msg.external_id == "5512873340:4821"
    assert msg.conversation_key == "5512873340"
    assert msg.customer_handle == "amelie_durand"
    assert msg.customer_name == "Amélie Durand"
    assert msg.text.startswith("Bonjour, le site est toujours en panne ?")
    assert msg.received_at == datetime(2026, 11, 20, 13, 42, 7, tzinfo=UTC)
    assert msg.language == "fr"
    assert msg.reply_to == "4815"
    assert msg.raw == json.loads(body)


def test_parse_inbound_keeps_edits_and_skips_the_rest() -> None:
    tg = TelegramChannel(settings_for("http://127.0.0.1:9/bot"))
    base = {"message_id": 7, "date": 1795182127, "text": "Toujours en panne ?"}
    edited = {
        "update_id": 1,
        "edited_message": {
            **base,
            "chat": {"id": -100555, "type": "supergroup"},
            "from": {"id": 9, "is_bot": False, "first_name": "Léa"},
        },
    }
    post = {"update_id": 2, "channel_post": {**base, "chat": {"id": -100777, "type": "channel"}}}
    photo = {
        "update_id": 3,
        "message": {"message_id": 8, "date": 1795182127, "chat": {"id": 9, "type": "private"}, "photo": []},
    }
    body = json.dumps([edited, post, photo]).encode()

    [msg] = tg.parse_inbound(body, {})

    assert (msg.external_id, msg.customer_handle, msg.customer_name) == ("-100555:7", "9", "Léa")
    assert msg.language == "" and msg.reply_to == ""


@pytest.mark.parametrize(("body", "needle"), [(b"{not json", "not valid JSON"), (b"1", "JSON object")])
def test_parse_inbound_refuses_a_body_that_is_no_update(body: bytes, needle: str) -> None:
    tg = TelegramChannel(settings_for("http://127.0.0.1:9/bot"))
    with pytest.raises(ValueError, match=needle):
        tg.parse_inbound(body, {})


@pytest.mark.parametrize(
    ("update", "needle"),
    [
        ({"update_id": 1, "message": {"message_id": 1, "date": 1}}, "message.chat"),
        ({"update_id": 2, "message": {"message_id": 1, "date": 1, "chat": {"type": "group"}}}, "chat.id"),
        ({"update_id": 3, "message": {"message_id": "1", "date": 1, "chat": {"id": 1}}}, "message_id"),
        ({"update_id": 4, "message": {"message_id": 1, "chat": {"id": 1}}}, "message.date"),
        ({"update_id": 5, "message": {"message_id": 1, "date": 10**20, "chat": {"id": 1}}}, "out of range"),
        ({"update_id": 6, "edited_message": [1]}, "edited_message is not an object"),
    ],
)
def test_an_unreadable_update_is_logged_and_skipped_without_text(
    update: dict[str, object], needle: str, caplog: pytest.LogCaptureFixture
) -> None:
    tg = TelegramChannel(settings_for("http://127.0.0.1:9/bot"))
    good = (PAYLOADS / "message.json").read_text()

    found = tg.parse_inbound(f"[1, {json.dumps(update)}, {good}]".encode(), {})

    assert [m.external_id for m in found] == ["5512873340:4821"]  # the readable one still comes
    assert f"Telegram update {update['update_id']} unreadable: " in caplog.text and needle in caplog.text


def test_media_labels_and_captions_on_the_webhook_path() -> None:
    tg = TelegramChannel(settings_for("http://127.0.0.1:9/bot"))
    chat = {"id": 9, "type": "private"}
    media = [
        {"photo": [{"file_id": "A", "width": 90, "height": 51}]},
        {"animation": {"file_id": "B"}, "document": {"file_id": "B"}},
        {"video_note": {"file_id": "C"}},
        {"venue": {"title": "Boutique"}, "location": {"latitude": 48.8, "longitude": 2.3}},
        {"document": {"file_id": "D"}, "caption": "  "},
        {"new_chat_members": [{"id": 10, "is_bot": False, "first_name": "Léa"}]},  # a service message
    ]
    updates = [
        {"update_id": n, "message": {"message_id": n, "date": 1795182127, "chat": chat, **fields}}
        for n, fields in enumerate(media, start=1)
    ]

    found = tg.parse_inbound(json.dumps(updates).encode(), {})

    assert [m.text for m in found] == ["[photo]", "[GIF]", "[video message]", "[venue]", "[document]"]


def test_name_capabilities_repr() -> None:
    tg = TelegramChannel(settings_for("http://127.0.0.1:9/bot"))
    assert (tg.name, tg.capabilities.max_body) == ("telegram", 4096)
    assert "token=<set>" in repr(tg)


async def test_a_group_gets_at_most_its_per_minute_limit_and_then_only_it_waits(peer: TelegramPeer) -> None:
    settings = settings_for(peer.base_url).model_copy(update={"per_group_per_minute": 3})
    tg = TelegramChannel(settings)
    try:
        for n in range(3):
            await tg.send(rendered(f"g{n}"), Target("-1001234"), idempotency_key=f"g{n}")
        with pytest.raises(TargetBusy) as busy:
            await tg.send(rendered("g3"), Target("-1001234"), idempotency_key="g3")
        assert 1.0 <= busy.value.retry_after <= 60.0
        assert "20" not in busy.value.reason and "3 messages a minute" in busy.value.reason
        for n in range(5):  # a private chat is not a group: no such limit
            await tg.send(rendered(f"p{n}"), Target("42"), idempotency_key=f"p{n}")
    finally:
        await tg.aclose()
    assert peer.texts("-1001234") == ["g0", "g1", "g2"] and len(peer.texts("42")) == 5


async def test_a_message_with_more_parts_than_room_left_waits_whole(peer: TelegramPeer) -> None:
    tg = TelegramChannel(settings_for(peer.base_url).model_copy(update={"per_group_per_minute": 3}))
    try:
        await tg.send(rendered("g0", "g1"), Target("-1005"), idempotency_key="a")
        with pytest.raises(TargetBusy):
            await tg.send(rendered("h0", "h1"), Target("-1005"), idempotency_key="b")  # never half sent
    finally:
        await tg.aclose()
    assert peer.texts("-1005") == ["g0", "g1"]


@pytest.fixture(params=["postgresql", "redis"])
def shared_store_url(request: pytest.FixtureRequest) -> tuple[str, str]:
    fixture = "redis_url" if request.param == "redis" else "pg_database_url"
    return request.param, request.getfixturevalue(fixture)


async def test_two_workers_keep_one_second_per_chat_and_twenty_a_minute_per_group_between_them(
    peer: TelegramPeer, shared_store_url: tuple[str, str]
) -> None:
    from broadcaster.db import create_engine
    from broadcaster.delivery.shared_pacing import PaceStore, PostgresPaceStore, RedisPaceStore, SharedPacing

    kind, url = shared_store_url
    engine = create_engine(url) if kind == "postgresql" else None

    def store() -> PaceStore:
        return PostgresPaceStore(engine) if engine is not None else RedisPaceStore(url)

    peer.enforce_limits(per_second=1_000, per_chat=1.0, per_group=3)
    settings = settings_for(peer.base_url, interval=1.0).model_copy(update={"per_group_per_minute": 3})
    workers = [TelegramChannel(settings) for _ in range(2)]
    pacings = [SharedPacing(store()) for _ in workers]
    for worker, pacing in zip(workers, pacings, strict=True):
        worker.share_pacing(pacing)
    try:
        # Two workers each sending twice to one customer: four messages, never two in a second.
        sends = [w.send(rendered(f"Point {i}"), Target("4242"), idempotency_key=f"k{i}") for i, w in
                 enumerate(workers * 2)]  # fmt: skip
        await asyncio.gather(*sends)
        # A group takes 3 a minute from both workers together: the fourth is deferred, not sent.
        for i in range(3):
            await workers[i % 2].send(rendered(f"Groupe {i}"), Target("-1001"), idempotency_key=f"g{i}")
        with pytest.raises(TargetBusy):
            await workers[1].send(rendered("Groupe 3"), Target("-1001"), idempotency_key="g3")
    finally:
        for worker, pacing in zip(workers, pacings, strict=True):
            await worker.aclose()
            await pacing.aclose()
        if engine is not None:
            await engine.dispose()

    assert peer.flood is not None and peer.flood.refused == 0
    assert len(peer.texts("4242")) == 4 and len(peer.texts("-1001")) == 3
