"""The e-mail channel against a real local SMTP server (aiosmtpd), never a patched client."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from broadcaster.message import RenderedMessage
from channels.base import (
    InboundMessage,
    RateLimited,
    Rejected,
    Reply,
    Replying,
    Target,
    Unauthorized,
    Unavailable,
)
from channels.email.adapter import EmailChannel
from channels.email.message import build_reply, message_id_for, reply_subject, thread_references
from channels.email.parse import parse_reply
from channels.email.settings import EmailSettings
from tests.peers.smtp import SmtpPeer, free_port

PASSWORD = "s3cret-Pa55word"
TEXT = "Bonjour, notre boutique est indisponible. Nous sommes désolés : retour prévu vers 14 h 30."
HTML = "<p>Bonjour, notre boutique est <strong>indisponible</strong>. Désolés — « vers 14 h 30 ».</p>"
MESSAGE = RenderedMessage(
    channel="email",
    locale="fr",
    kind="update",
    parts=(TEXT,),
    title="Incident en cours : paiement indisponible",
    html=HTML,
)
WAIT = 5.0  # seconds; an upper bound on waiting, never an expectation about speed


def settings_for(peer: SmtpPeer | None, **overrides: Any) -> EmailSettings:
    values: dict[str, Any] = {
        "host": peer.host if peer else "127.0.0.1",
        "port": peer.port if peer else free_port(),
        "security": "none",
        "from_address": "status@shop.example",
        "from_name": "Ma Boutique",
        "reply_domain": "reply.shop.example",
        "pool_size": 4,
        "timeout_seconds": WAIT,
        "local_hostname": "test.localdomain",
    }
    values.update(overrides)
    return EmailSettings(**values)


@pytest.fixture
def peer() -> Iterator[SmtpPeer]:
    with SmtpPeer() as running:
        yield running


@pytest.fixture
async def channel(peer: SmtpPeer) -> AsyncIterator[EmailChannel]:
    email = EmailChannel(settings_for(peer))
    yield email
    await email.aclose()


async def test_message_is_multipart_alternative_with_broadcast_headers(
    peer: SmtpPeer, channel: EmailChannel
) -> None:
    target = Target(
        "client@example.org",
        locale="fr",
        unsubscribe_url="https://shop.example/unsubscribe/abc",
        reply_token="tok123",
    )
    result = await channel.send(MESSAGE, target, idempotency_key="42:email:client@example.org")

    assert peer.wait_for(1, WAIT)
    sender, recipients, msg = peer.messages[0]
    assert (sender, recipients) == ("status@shop.example", ["client@example.org"])
    assert msg.get_content_type() == "multipart/alternative"
    text, html = msg.iter_parts()
    assert (text.get_content_type(), html.get_content_type()) == ("text/plain", "text/html")
    assert text.get_content_charset() == html.get_content_charset() == "utf-8"
    assert text.get_content().strip() == TEXT  # type: ignore[attr-defined]
    assert html.get_content().strip() == HTML  # type: ignore[attr-defined]
    assert msg["Subject"] == MESSAGE.title
    assert msg["From"] == "Ma Boutique <status@shop.example>"
    assert msg["To"] == "client@example.org"
    assert msg["Date"] is not None
    assert msg["Content-Language"] == "fr"
    assert msg["List-Unsubscribe"] == "<https://shop.example/unsubscribe/abc>"
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert msg["Reply-To"] == "reply+tok123@reply.shop.example"
    assert "Auto-Submitted" not in msg
    assert re.fullmatch(r"<[0-9a-f]{32}@shop\.example>", msg["Message-ID"])
    assert result.provider_message_id == msg["Message-ID"]


async def test_message_id_is_deterministic_per_idempotency_key(peer: SmtpPeer, channel: EmailChannel) -> None:
    target = Target("client@example.org")
    first = await channel.send(MESSAGE, target, idempotency_key="7:email:1")
    again = await channel.send(MESSAGE, target, idempotency_key="7:email:1")
    other = await channel.send(MESSAGE, target, idempotency_key="7:email:2")

    assert peer.wait_for(3, WAIT)
    ids = [msg["Message-ID"] for _, _, msg in peer.messages]
    assert ids == [first.provider_message_id, again.provider_message_id, other.provider_message_id]
    assert ids[0] == ids[1] != ids[2]


async def test_plain_target_gets_no_list_or_reply_headers(peer: SmtpPeer, channel: EmailChannel) -> None:
    text_only = RenderedMessage(
        channel="email", locale="en", kind="update", parts=("Back soon.",), title="Hi"
    )
    await channel.send(text_only, Target("a@example.org", locale="fr_CA"), idempotency_key="k")

    assert peer.wait_for(1, WAIT)
    msg = peer.messages[0][2]
    assert "List-Unsubscribe" not in msg and "List-Unsubscribe-Post" not in msg and "Reply-To" not in msg
    assert msg["Content-Language"] == "fr-CA"
    assert msg.get_content_type() == "text/plain"


async def test_fifty_messages_reuse_a_pool_of_four_connections(peer: SmtpPeer, channel: EmailChannel) -> None:
    targets = [Target(f"client{i}@example.org") for i in range(50)]
    results = await asyncio.gather(
        *(channel.send(MESSAGE, t, idempotency_key=f"1:email:{i}") for i, t in enumerate(targets))
    )

    assert peer.wait_for(50, WAIT)
    assert len({r.provider_message_id for r in results}) == 50
    assert sorted(r[0] for _, r, _ in peer.messages) == sorted(t.address for t in targets)
    assert 1 <= peer.connections <= 4
    assert channel.connections_opened == peer.connections


async def test_starttls_with_auth_trusting_the_peer_ca() -> None:
    with SmtpPeer(auth=("bot", PASSWORD), tls="starttls") as peer:
        settings = settings_for(
            peer, security="starttls", username="bot", password=SecretStr(PASSWORD), ca_file=peer.ca_file
        )
        channel = EmailChannel(settings)
        try:
            await channel.send(MESSAGE, Target("client@example.org"), idempotency_key="k1")
            await channel.send(MESSAGE, Target("client@example.org"), idempotency_key="k2")
            assert (await channel.check()).ok
        finally:
            await channel.aclose()
        assert peer.wait_for(2, WAIT)
        assert peer.connections == 2  # one pooled connection for both messages, one for check()


async def test_implicit_tls_with_auth() -> None:
    with SmtpPeer(auth=("bot", PASSWORD), tls="implicit") as peer:
        settings = settings_for(
            peer, security="tls", username="bot", password=SecretStr(PASSWORD), ca_file=peer.ca_file
        )
        channel = EmailChannel(settings)
        try:
            await channel.send(MESSAGE, Target("client@example.org"), idempotency_key="k1")
            check = await channel.check()
        finally:
            await channel.aclose()
        assert peer.wait_for(1, WAIT)
        assert check.ok, check


async def test_wrong_password_is_unauthorized_and_never_shown() -> None:
    with SmtpPeer(auth=("bot", "the-right-one"), tls="starttls") as peer:
        settings = settings_for(
            peer, security="starttls", username="bot", password=SecretStr(PASSWORD), ca_file=peer.ca_file
        )
        channel = EmailChannel(settings)
        try:
            with pytest.raises(Unauthorized) as caught:
                await channel.send(MESSAGE, Target("client@example.org"), idempotency_key="k")
            check = await channel.check()
        finally:
            await channel.aclose()
    assert caught.value.reason == "SMTP login refused for user 'bot'"
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    assert not check.ok and "password" in check.fix
    for shown in (str(caught.value), repr(caught.value), check.detail, check.fix, repr(channel)):
        assert PASSWORD not in shown


async def test_unknown_mailbox_is_rejected_and_the_connection_kept(
    peer: SmtpPeer, channel: EmailChannel
) -> None:
    peer.reject("gone@example.org")
    with pytest.raises(Rejected) as caught:
        await channel.send(MESSAGE, Target("gone@example.org"), idempotency_key="k1")
    await channel.send(MESSAGE, Target("here@example.org"), idempotency_key="k2")

    assert caught.value.reason.startswith("550 ") and "mailbox unavailable" in caught.value.reason
    assert peer.wait_for(1, WAIT)
    assert peer.connections == 1


async def test_transient_451_is_unavailable_then_sends(peer: SmtpPeer, channel: EmailChannel) -> None:
    peer.fail_next(1, code=451)
    with pytest.raises(Unavailable) as caught:
        await channel.send(MESSAGE, Target("client@example.org"), idempotency_key="k")
    await channel.send(MESSAGE, Target("client@example.org"), idempotency_key="k")

    assert caught.value.reason.startswith("451 ")
    assert peer.wait_for(1, WAIT)


async def test_rate_reply_is_rate_limited(peer: SmtpPeer, channel: EmailChannel) -> None:
    peer.fail_next(1, code=452, text="4.7.1 Too many messages, sending rate exceeded")
    with pytest.raises(RateLimited) as caught:
        await channel.send(MESSAGE, Target("client@example.org"), idempotency_key="k")
    assert caught.value.retry_after > 0


async def test_refuse_all_then_recover_remakes_dropped_connections(
    peer: SmtpPeer, channel: EmailChannel
) -> None:
    await channel.send(MESSAGE, Target("client@example.org"), idempotency_key="k0")
    peer.refuse_all()
    for attempt in range(3):
        with pytest.raises(Unavailable) as caught:
            await channel.send(MESSAGE, Target("client@example.org"), idempotency_key=f"k{attempt + 1}")
        assert caught.value.reason.startswith("421 ")
    refused_connections = peer.connections
    peer.recover()
    await channel.send(MESSAGE, Target("client@example.org"), idempotency_key="k9")

    assert peer.wait_for(2, WAIT)
    assert peer.connections == refused_connections + 1  # the 421 connection was dropped, a new one made


async def test_connection_closed_by_server_is_reopened_transparently(
    peer: SmtpPeer, channel: EmailChannel
) -> None:
    await channel.send(MESSAGE, Target("client@example.org"), idempotency_key="k1")
    peer.drop_connections()
    await channel.send(MESSAGE, Target("client@example.org"), idempotency_key="k2")

    assert peer.wait_for(2, WAIT)
    assert peer.connections == 2


async def test_stopped_server_is_unavailable() -> None:
    peer = SmtpPeer()
    peer.start()
    channel = EmailChannel(settings_for(peer))
    try:
        await channel.send(MESSAGE, Target("client@example.org"), idempotency_key="k1")
        peer.stop()
        with pytest.raises(Unavailable) as caught:
            await channel.send(MESSAGE, Target("client@example.org"), idempotency_key="k2")
        check = await channel.check()
    finally:
        await channel.aclose()
        peer.stop()
    assert caught.value.reason == f"cannot connect to SMTP server 127.0.0.1:{peer.port}"
    assert not check.ok and "channels.email.host" in check.fix


async def test_check_ok_and_what_to_fix() -> None:
    with SmtpPeer(tls="starttls") as peer:
        good = EmailChannel(settings_for(peer, security="starttls", ca_file=peer.ca_file))
        untrusted = EmailChannel(settings_for(peer, security="starttls"))
        plain_only = EmailChannel(settings_for(peer, security="tls", ca_file=peer.ca_file))
        results = [await c.check() for c in (good, untrusted, plain_only)]
        for c in (good, untrusted, plain_only):
            await c.aclose()
    no_host = await EmailChannel(EmailSettings()).check()
    no_password = await EmailChannel(settings_for(None, username="bot")).check()

    assert results[0].ok and "reachable" in results[0].detail
    assert not results[1].ok and "not trusted" in results[1].detail and "ca_file" in results[1].fix
    assert not results[2].ok and "channels.email.security" in results[2].fix
    assert (no_host.ok, no_host.fix) == (False, "set channels.email.host")
    assert (no_password.ok, no_password.fix) == (False, "set channels.email.password")


async def test_invalid_address_is_rejected_without_sending(peer: SmtpPeer, channel: EmailChannel) -> None:
    with pytest.raises(Rejected):
        await channel.send(MESSAGE, Target("not an address"), idempotency_key="k")
    assert peer.connections == 0


async def test_closed_channel_refuses_to_send(peer: SmtpPeer) -> None:
    channel = EmailChannel(settings_for(peer))
    await channel.send(MESSAGE, Target("client@example.org"), idempotency_key="k1")
    await channel.aclose()
    with pytest.raises(Unavailable):
        await channel.send(MESSAGE, Target("client@example.org"), idempotency_key="k2")


def test_repr_hides_the_password_and_inbound_is_not_built_yet() -> None:
    channel = EmailChannel(settings_for(None, username="bot", password=SecretStr(PASSWORD)))
    assert PASSWORD not in repr(channel)
    assert "bot" in repr(channel)
    assert channel.parse_inbound(b"anything", {}) == []
    assert channel.name == "email" and channel.capabilities.max_title == 78


# ----- answers to customers ----------------------------------------------------------------------

REPLY_DOMAIN = "reply.shop.example"
CUSTOMER_REPLY = (Path(__file__).parent.parent / "payloads" / "email" / "gmail_reply_fr.eml").read_bytes()
CUSTOMER_ADDRESS = "reply+42.3f9c2a7b1d4e8f60@reply.shop.example"


def answer(text: str, locale: str = "fr") -> RenderedMessage:
    return RenderedMessage(channel="email", locale=locale, kind="reply", parts=(text,))


def to_customer(message: InboundMessage) -> Reply:
    """The Reply the inbox builds from a customer's e-mail (broadcaster/inbox/answers.py)."""
    return Reply(
        conversation_key=message.conversation_key,
        customer_handle=message.customer_handle,
        in_reply_to=message.external_id,
        locale="fr",
        subject=str(message.raw["subject"]),
        references=str(message.raw["references"]),
        reply_token=f"{message.raw['update_id']}.{message.raw['token']}",
    )


def customer_message() -> InboundMessage:
    [message] = parse_reply(CUSTOMER_REPLY, [CUSTOMER_ADDRESS], REPLY_DOMAIN, mail_from="marie@gmail.example")
    return message


async def test_answer_is_threaded_under_the_customer_message(peer: SmtpPeer, channel: EmailChannel) -> None:
    customer = customer_message()
    text = "Bonjour Marie,\n\n<b>Fish & chips</b> &amp; double débit : remboursé ce soir."

    result = await channel.reply(answer(text), to_customer(customer), idempotency_key="m:1")

    assert peer.wait_for(1, WAIT)
    sender, recipients, msg = peer.messages[0]
    assert (sender, recipients) == ("status@shop.example", ["marie.dupont@gmail.example"])
    assert msg["To"] == "marie.dupont@gmail.example"
    assert msg["Subject"] == "Re: Incident en cours : paiement indisponible"  # the customer's had "Re:"
    assert msg["In-Reply-To"] == "<CAF3x9Hq2v+Yk1pLr0aQ7mZ5nT8e@mail.gmail.example>"
    assert msg["References"].split() == [
        "<d3ba6af79536684dc306ef9d9932bcc4@shop.example>",
        "<6192fefbc4104cdfb76009a9ae63958b@shop.example>",
        "<CAF3x9Hq2v+Yk1pLr0aQ7mZ5nT8e@mail.gmail.example>",
    ]
    assert msg["Reply-To"] == CUSTOMER_ADDRESS
    assert msg["From"] == "Ma Boutique <status@shop.example>"
    assert (msg.get_content_type(), msg.get_content_charset()) == ("text/plain", "utf-8")
    body: str = msg.get_content()
    assert body.replace("\r\n", "\n").rstrip("\n") == text  # the parser keeps the wire's CRLF
    assert not any(part.defects for part in msg.walk())
    assert result.provider_message_id == msg["Message-ID"] == message_id_for("m:1", "status@shop.example")
    assert isinstance(channel, Replying)
    assert msg["Auto-Submitted"] is None  # an agent wrote it


async def test_the_bots_answers_say_they_are_automatic(peer: SmtpPeer, channel: EmailChannel) -> None:
    automatic = RenderedMessage(
        "email", "fr", "reply", parts=("Tout fonctionne.",), extra={"auto_submitted": True}
    )
    await channel.reply(automatic, to_customer(customer_message()), idempotency_key="m:2")
    assert peer.wait_for(1, WAIT)
    assert (
        peer.messages[0][2]["Auto-Submitted"] == "auto-replied"
    )  # RFC 3834: out-of-office replies stay quiet


async def test_answer_id_is_the_external_id_the_inbox_would_file(
    peer: SmtpPeer, channel: EmailChannel
) -> None:
    result = await channel.reply(answer("Bonjour"), to_customer(customer_message()), idempotency_key="m:2")

    assert peer.wait_for(1, WAIT)
    received = peer.messages[0][2]
    # Our answer coming back to a reply address (a Bcc, a forward loop) is recognised as ours.
    [echo] = parse_reply(
        received.as_bytes(), [CUSTOMER_ADDRESS], REPLY_DOMAIN, mail_from="status@shop.example"
    )
    assert echo.external_id == result.provider_message_id


async def test_customer_answering_our_answer_stays_in_the_conversation(
    peer: SmtpPeer, channel: EmailChannel
) -> None:
    first = customer_message()
    result = await channel.reply(answer("Remboursé ce soir."), to_customer(first), idempotency_key="m:3")
    assert peer.wait_for(1, WAIT)
    ours = peer.messages[0][2]

    # What the customer's mail client sends when they press "Reply" (RFC 5322 §3.6.4).
    again = EmailMessage(policy=policy.SMTP)
    again["From"] = "Marie Dupont <marie.dupont@gmail.example>"
    again["To"] = ours["Reply-To"]
    again["Subject"] = "Re: " + ours["Subject"]
    again["Message-ID"] = "<CAF3x9Hq2v+second@mail.gmail.example>"
    again["In-Reply-To"] = ours["Message-ID"]
    again["References"] = f"{ours['References']} {ours['Message-ID']}"
    again.set_content("Merci beaucoup !\n\nLe 12 nov. 2026, Ma Boutique a écrit :\n> Remboursé ce soir.\n")
    [second] = parse_reply(
        again.as_bytes(), [str(ours["Reply-To"])], REPLY_DOMAIN, mail_from="marie@gmail.example"
    )

    assert second.conversation_key == first.conversation_key
    assert second.reply_to == result.provider_message_id
    assert second.text == "Merci beaucoup !"
    follow_up = to_customer(second)
    assert reply_subject(follow_up.subject, "fr") == "Re: Incident en cours : paiement indisponible"
    assert thread_references(follow_up.references, follow_up.in_reply_to)[-2:] == [
        result.provider_message_id,
        "<CAF3x9Hq2v+second@mail.gmail.example>",
    ]


async def test_refused_mailbox_is_rejected_and_bad_handle_never_sent(
    peer: SmtpPeer, channel: EmailChannel
) -> None:
    peer.reject("marie.dupont@gmail.example")
    with pytest.raises(Rejected, match="^550 "):
        await channel.reply(answer("Bonjour"), to_customer(customer_message()), idempotency_key="m:4")
    peer.fail_next(1, code=451)
    with pytest.raises(Unavailable, match="^451 "):
        await channel.reply(
            answer("Bonjour"), Reply("t", "other@example.org", "<a@b>"), idempotency_key="m:5"
        )
    connections = peer.connections
    for handle in ("@camille_dupont", "", "two words@example.org"):
        with pytest.raises(Rejected, match="customer_handle"):
            await channel.reply(answer("Bonjour"), Reply("t", handle, "<a@b>"), idempotency_key="m:6")
    assert peer.connections == connections and peer.messages == []


@pytest.mark.parametrize(
    ("subject", "locale", "expected"),
    [
        ("Paiement refusé", "fr", "Re: Paiement refusé"),
        ("Re: Re: Paiement refusé", "fr", "Re: Paiement refusé"),
        ("RE : TR: Paiement\n refusé", "fr", "Re: TR: Paiement refusé"),
        ("re[2]: Order", "en", "Re: Order"),
        ("Remboursement", "fr", "Re: Remboursement"),
        ("", "fr_CA", "Re: Votre message"),
        ("  Re:  ", "en-GB", "Re: Your message"),
        ("", "de", "Re: Votre message"),
    ],
)
def test_reply_subject(subject: str, locale: str, expected: str) -> None:
    assert reply_subject(subject, locale) == expected


def test_reply_headers_stay_valid_whatever_the_ids() -> None:
    references = " ".join(f"<id{i}@mail.example>" for i in range(40)) + " <bad id> <évil@x> garbage"
    to = Reply("tok", "a@b.example", "sha256:" + "0" * 64, references=references, subject="Où ?")
    email = build_reply(
        answer("Bonjour"), to, idempotency_key="k", from_address="status@shop.example", reply_domain=""
    )
    parsed = message_from_bytes(email.as_bytes(), policy=policy.default)

    assert "In-Reply-To" not in parsed  # the customer's message had no Message-ID to name
    assert "Reply-To" not in parsed
    kept = str(parsed["References"]).split()
    assert len(kept) == 20 and kept[0] == "<id0@mail.example>" and kept[-1] == "<id39@mail.example>"
    assert str(parsed["Subject"]) == "Re: Où ?"
    assert all(len(line) <= 998 for line in email.as_bytes().split(b"\r\n"))
    several = Reply("tok", "a@b.example", "<c@x>#0123456789abcdef")  # one e-mail, two conversations
    email = build_reply(answer("Bonjour"), several, idempotency_key="k", from_address="status@shop.example")
    assert (email["In-Reply-To"], email["References"]) == ("<c@x>", "<c@x>")
