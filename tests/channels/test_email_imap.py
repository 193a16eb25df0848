"""IMAP polling of the reply mailbox, against a real local IMAP server (tests/peers/imap.py)."""

from __future__ import annotations

import codecs
import logging
import socket
from collections.abc import AsyncIterator, Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from sqlmodel import select

from broadcaster.db import SessionFactory
from broadcaster.delivery.subscribers import NewSubscriber
from broadcaster.inbox.inbound import Poller, load_cursor, reply_address_for
from broadcaster.models import Delivery, InboundRecord, Subscription
from channels.base import Rejected, Unauthorized, Unavailable
from channels.email.imap import PER_POLL, ImapMailbox
from channels.email.parse import ReplyAddress
from channels.email.settings import EmailSettings
from tests.e2e.helpers import deliver, draft, live_settings, open_, subscribe
from tests.peers.imap import ImapPeer
from tests.peers.smtp import SmtpPeer

PAYLOADS = Path(__file__).resolve().parent.parent / "payloads" / "email"
DOMAIN = "reply.shop.example"
TOKEN = "3f9c2a7b1d4e8f60"
REPLY_ADDRESS = f"reply+42.{TOKEN}@{DOMAIN}"
OUR_MESSAGE_ID = "<6192fefbc4104cdfb76009a9ae63958b@shop.example>"
PASSWORD = 'imap-"s3cret\\pw'  # a quote and a backslash: the password travels quoted


def payload(name: str) -> bytes:
    return (PAYLOADS / name).read_bytes()


def reply(
    body: str = "Toujours en panne ?", *, to: str = REPLY_ADDRESS, message_id: str = "<r1@gmail.example>",
    in_reply_to: str = OUR_MESSAGE_ID, **headers: str,
) -> bytes:  # fmt: skip
    email = EmailMessage()
    email["Return-Path"] = "<marie.dupont@gmail.example>"
    email["From"] = "Marie Dupont <marie.dupont@gmail.example>"
    email["To"] = to
    email["Subject"] = "Re: Incident en cours"
    email["Message-ID"] = message_id
    if in_reply_to:
        email["In-Reply-To"] = in_reply_to
    email["Date"] = "Tue, 12 Nov 2026 14:07:18 +0100"
    for name, value in headers.items():
        email[name.replace("_", "-")] = value
    email.set_content(f"{body}\n\nLe 12 nov. 2026, Maison Exemple a écrit :\n> Incident en cours")
    return email.as_bytes()


def settings_for(peer: ImapPeer, **overrides: Any) -> EmailSettings:
    values: dict[str, Any] = {
        "imap_host": peer.host,
        "imap_port": peer.port,
        "imap_security": "none",
        "imap_username": peer.username,
        "imap_password": SecretStr(peer.password),
        "reply_domain": DOMAIN,
        "timeout_seconds": 10.0,  # an upper bound for one IMAP command, never an expectation
        **overrides,
    }
    return EmailSettings(**values)


@pytest.fixture
def peer() -> Iterator[ImapPeer]:
    with ImapPeer(password=PASSWORD) as imap:
        yield imap


@pytest.fixture
async def mailbox(peer: ImapPeer) -> AsyncIterator[ImapMailbox]:
    box = ImapMailbox(settings_for(peer))
    yield box
    await box.aclose()


# -- what becomes a message ----------------------------------------------------------------------


async def test_replies_with_a_token_become_inbound_messages(peer: ImapPeer, mailbox: ImapMailbox) -> None:
    peer.append(payload("gmail_reply_fr.eml"))
    peer.append(payload("outlook_reply_fr.eml"))  # no Return-Path: From stands for the sender

    messages, cursor = await mailbox.poll("")

    assert [(m.channel, m.conversation_key) for m in messages] == [
        ("email", TOKEN),
        ("email", "a0b1c2d3e4f50617"),
    ]
    assert messages[0].external_id == "<CAF3x9Hq2v+Yk1pLr0aQ7mZ5nT8e@mail.gmail.example>"
    assert messages[0].customer_handle == "marie.dupont@gmail.example"
    assert "a écrit" not in messages[0].text and messages[0].text.startswith("Bonjour,")
    assert messages[1].reply_to == "<550cbb964c4caeebcc560b73bd0d7304@shop.example>"
    assert cursor == f"{peer.uidvalidity}:2"
    assert peer.seen == []  # BODY.PEEK[]: the mailbox's own reader still sees them as unread
    assert not {"STORE", "UID STORE", "EXPUNGE", "UID EXPUNGE", "COPY", "UID MOVE"} & set(peer.commands)


@pytest.mark.parametrize("name", ["auto_reply_ooo.eml", "bounce_dsn.eml", "bulk_newsletter.eml"])
async def test_automatic_mail_is_ignored(
    peer: ImapPeer, mailbox: ImapMailbox, name: str, caplog: pytest.LogCaptureFixture
) -> None:
    peer.append(payload(name))
    caplog.set_level(logging.INFO, logger="channels.email.imap")

    messages, cursor = await mailbox.poll("")

    assert messages == []
    assert cursor.endswith(":1")  # read and passed: not fetched again
    assert "IMAP message UID 1 ignored: automatic message" in caplog.text
    assert TOKEN not in caplog.text


async def test_a_null_return_path_is_an_automatic_message(peer: ImapPeer, mailbox: ImapMailbox) -> None:
    raw = reply().replace(b"Return-Path: <marie.dupont@gmail.example>", b"Return-Path: <>")
    peer.append(raw)

    assert (await mailbox.poll(""))[0] == []


async def test_only_reply_addresses_count_and_are_found_in_delivery_headers(
    peer: ImapPeer, mailbox: ImapMailbox
) -> None:
    peer.append(reply(to="support@shop.example", message_id="<not-ours@gmail.example>"))  # In-Reply-To only
    peer.append(reply(to=f"reply+42.{TOKEN}@other.example", message_id="<other-domain@gmail.example>"))
    peer.append(
        reply(
            to="team@lists.shop.example", message_id="<delivered@gmail.example>", Delivered_To=REPLY_ADDRESS
        )
    )
    peer.append(
        reply(
            to="alias@shop.example",
            message_id="<original@gmail.example>",
            X_Original_To="reply+43.0123456789abcdef@reply.shop.example",
        )
    )
    peer.append(reply(to="support@shop.example", message_id="<cc@gmail.example>", Cc=REPLY_ADDRESS))

    messages, _ = await mailbox.poll("")

    assert [(m.external_id, m.conversation_key) for m in messages] == [
        ("<delivered@gmail.example>", TOKEN),
        ("<original@gmail.example>", "0123456789abcdef"),
        ("<cc@gmail.example>", TOKEN),
    ]


async def test_addresses_we_never_sent_are_dropped_when_a_lookup_is_given(peer: ImapPeer) -> None:
    async def known(address: ReplyAddress) -> bool:
        return address == ReplyAddress(42, TOKEN)

    peer.append(reply(message_id="<known@gmail.example>"))
    peer.append(reply(to=f"reply+42.00000000deadbeef@{DOMAIN}", message_id="<unknown@gmail.example>"))
    peer.append(reply(to=f"reply+43.{TOKEN}@{DOMAIN}", message_id="<other-update@gmail.example>"))
    box = ImapMailbox(settings_for(peer), known_address=known)
    try:
        messages, _ = await box.poll("")
    finally:
        await box.aclose()

    assert [m.external_id for m in messages] == ["<known@gmail.example>"]


@pytest.fixture
def decoded_probes() -> Iterator[list[str]]:
    """Each decoding of a body whose charset is named "x-probe-…": the observable of a parsed body.

    The codec registry asks every search function about a name it does not know; this one records it.
    """
    seen: list[str] = []

    def search(name: str) -> None:
        if name.startswith("x_probe"):  # the registry passes names lower-cased, "-" as "_"
            seen.append(name)

    codecs.register(search)
    yield seen
    codecs.unregister(search)


def probed(raw: bytes, charset: str) -> bytes:
    return raw.replace(b'charset="utf-8"', f'charset="{charset}"'.encode())


async def test_a_message_for_an_unknown_token_is_never_parsed(
    peer: ImapPeer, decoded_probes: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    asked: list[str] = []

    async def known(address: ReplyAddress) -> bool:
        asked.append(address.token)
        return address.token == TOKEN

    unknown = "00000000deadbeef"
    peer.append(probed(reply(to=f"reply+42.{unknown}@{DOMAIN}"), "x-probe-unknown"))
    peer.append(probed(reply(message_id="<known@gmail.example>"), "x-probe-known"))
    caplog.set_level(logging.INFO, logger="channels.email.imap")
    box = ImapMailbox(settings_for(peer), known_address=known)
    messages, cursor = await box.poll("")

    assert [m.external_id for m in messages] == ["<known@gmail.example>"]
    assert asked == [unknown, TOKEN]
    assert set(decoded_probes) == {"x_probe_known"}  # the unknown token's body was never read
    assert "UID 1 ignored: we never sent its reply address" in caplog.text
    assert cursor.endswith(":2")


async def test_a_hostile_html_only_reply_is_read_in_linear_time(peer: ImapPeer) -> None:
    hostile = EmailMessage()
    hostile["From"], hostile["To"], hostile["Message-ID"] = "Luc <luc@proton.example>", REPLY_ADDRESS, "<h@p>"
    hostile.set_content("<p>Toujours en panne</p>" + "<a b='" * (512 * 1024 // 6), subtype="html")
    peer.append(hostile.as_bytes())
    box = ImapMailbox(settings_for(peer, inbound_max_bytes=2 * 1024 * 1024))

    messages, _ = await box.poll("")

    assert [m.text for m in messages] == ["Toujours en panne"]


async def test_behind_a_dmarc_checking_mta_each_reply_records_its_verdict(peer: ImapPeer) -> None:
    ours = "Authentication-Results: mx.shop.example; dmarc=pass header.from=gmail.example\r\n"
    peer.append(ours.encode() + reply(message_id="<authentic@gmail.example>"))
    peer.append(reply(message_id="<no-verdict@gmail.example>"))
    box = ImapMailbox(settings_for(peer, inbound_authserv_id="mx.shop.example"))
    try:
        messages, _ = await box.poll("")
    finally:
        await box.aclose()

    assert [(m.external_id, m.raw["authenticated"]) for m in messages] == [
        ("<authentic@gmail.example>", True),
        ("<no-verdict@gmail.example>", False),
    ]


async def test_a_message_over_inbound_max_bytes_is_skipped_with_a_log_line(
    peer: ImapPeer, caplog: pytest.LogCaptureFixture
) -> None:
    peer.append(reply("x" * 4096, message_id="<big@gmail.example>"))
    peer.append(reply(message_id="<small@gmail.example>"))
    box = ImapMailbox(settings_for(peer, inbound_max_bytes=2048))
    try:
        messages, cursor = await box.poll("")
    finally:
        await box.aclose()

    assert [m.external_id for m in messages] == ["<small@gmail.example>"]
    assert cursor.endswith(":2")
    assert "UID 1 is" in caplog.text and "inbound_max_bytes (2048): skipped" in caplog.text


# -- the cursor ----------------------------------------------------------------------------------


async def test_the_cursor_returns_only_new_messages(peer: ImapPeer, mailbox: ImapMailbox) -> None:
    peer.append(reply(message_id="<first@gmail.example>"))
    first, cursor = await mailbox.poll("")

    again, same = await mailbox.poll(cursor)
    peer.append(reply(message_id="<second@gmail.example>"))
    new, last = await mailbox.poll(same)

    assert [m.external_id for m in first] == ["<first@gmail.example>"]
    assert (again, same) == ([], cursor)
    assert [m.external_id for m in new] == ["<second@gmail.example>"]
    assert last.endswith(":2")


async def test_a_poll_reads_at_most_per_poll_messages_and_goes_on_next_time(
    peer: ImapPeer, mailbox: ImapMailbox
) -> None:
    for index in range(PER_POLL + 3):
        peer.append(reply(message_id=f"<m{index}@gmail.example>"))

    first, cursor = await mailbox.poll("")
    rest, _ = await mailbox.poll(cursor)

    assert len(first) == PER_POLL and cursor.endswith(f":{PER_POLL}")
    assert [m.external_id for m in rest] == [f"<m{i}@gmail.example>" for i in range(PER_POLL, PER_POLL + 3)]


async def test_a_new_uidvalidity_reads_the_mailbox_again(peer: ImapPeer, mailbox: ImapMailbox) -> None:
    peer.append(reply(message_id="<before@gmail.example>"))
    _, cursor = await mailbox.poll("")

    validity = peer.change_uidvalidity()  # UID 1 is now another numbering: the old cursor means nothing
    peer.append(reply(message_id="<after@gmail.example>"))
    messages, new_cursor = await mailbox.poll(cursor)

    assert [m.external_id for m in messages] == ["<before@gmail.example>", "<after@gmail.example>"]
    assert new_cursor == f"{validity}:2"
    assert cursor != new_cursor


async def test_a_malformed_cursor_is_rejected_so_the_poller_resets_it(mailbox: ImapMailbox) -> None:
    with pytest.raises(Rejected, match="not <uidvalidity>:<uid>"):
        await mailbox.poll("yesterday")


async def test_each_poll_logs_in_and_out(peer: ImapPeer, mailbox: ImapMailbox) -> None:
    _, cursor = await mailbox.poll("")
    await mailbox.poll(cursor)

    assert peer.commands.count("LOGIN") == peer.commands.count("LOGOUT") == 2


# -- failures ------------------------------------------------------------------------------------


async def test_a_wrong_password_is_unauthorized_and_never_shown(
    peer: ImapPeer, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = 'wr"ong\\pass'
    box = ImapMailbox(settings_for(peer, imap_password=SecretStr(wrong)))
    caplog.set_level(logging.DEBUG)  # aioimaplib logs every command it sends at DEBUG
    try:
        with pytest.raises(Unauthorized) as caught:
            await box.poll("")
        check = await box.check()
    finally:
        await box.aclose()

    assert "channels.email.imap_password" in caught.value.reason
    assert not check.ok and "imap_password" in check.detail
    assert "LOGIN" in caplog.text  # the command was logged, its arguments were not
    for text in (str(caught.value), check.detail, check.fix, caplog.text, repr(box)):
        assert wrong not in text and "ong\\\\pass" not in text and "wr\\" not in text


async def test_a_server_that_is_down_is_unavailable(peer: ImapPeer) -> None:
    settings = settings_for(peer)
    peer.stop()
    box = ImapMailbox(settings)

    with pytest.raises(Unavailable, match=f"cannot connect to IMAP server 127.0.0.1:{settings.imap_port}"):
        await box.poll("")
    check = await box.check()

    assert not check.ok and "imap_host" in check.fix
    await box.aclose()


async def test_a_server_that_never_greets_is_unavailable(peer: ImapPeer) -> None:
    with socket.socket() as silent:  # accepts connections (the kernel's backlog) and says nothing
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        box = ImapMailbox(settings_for(peer, imap_port=silent.getsockname()[1], timeout_seconds=0.5))
        with pytest.raises(Unavailable, match="did not answer in time"):
            await box.poll("")


async def test_an_unknown_mailbox_names_the_setting(peer: ImapPeer) -> None:
    box = ImapMailbox(settings_for(peer, imap_mailbox="Archives"))
    try:
        with pytest.raises(Unauthorized, match="channels.email.imap_mailbox"):
            await box.poll("")
    finally:
        await box.aclose()


async def test_a_non_ascii_mailbox_name_is_sent_in_modified_utf7() -> None:
    with ImapPeer(mailbox="R&AOk-ponses") as peer:
        peer.append(reply())
        box = ImapMailbox(settings_for(peer, imap_mailbox="Réponses"))
        try:
            messages, _ = await box.poll("")
        finally:
            await box.aclose()
    assert len(messages) == 1


# -- TLS and check -------------------------------------------------------------------------------


@pytest.mark.parametrize(("tls", "security"), [("implicit", "tls"), ("starttls", "starttls")])
async def test_tls_and_starttls_with_a_private_ca(tls: str, security: str) -> None:
    with ImapPeer(tls=tls) as peer:  # type: ignore[arg-type]
        peer.append(reply())
        box = ImapMailbox(settings_for(peer, imap_security=security, imap_ca_file=peer.ca_file))
        try:
            messages, _ = await box.poll("")
            check = await box.check()
        finally:
            await box.aclose()
        commands = peer.commands
    assert len(messages) == 1
    assert check.ok and f"({security})" in check.detail
    if security == "starttls":
        assert commands.index("STARTTLS") < commands.index("LOGIN")


async def test_an_untrusted_certificate_names_imap_ca_file() -> None:
    with ImapPeer(tls="implicit") as peer:
        box = ImapMailbox(settings_for(peer, imap_security="tls"))  # system CAs only
        try:
            with pytest.raises(Unauthorized, match="channels.email.imap_ca_file"):
                await box.poll("")
        finally:
            await box.aclose()


async def test_starttls_refused_by_a_plain_server_names_imap_security(peer: ImapPeer) -> None:
    box = ImapMailbox(settings_for(peer, imap_security="starttls"))
    check = await box.check()
    await box.aclose()

    assert not check.ok and "channels.email.imap_security" in check.detail


async def test_check_reports_the_mailbox(peer: ImapPeer) -> None:
    box = ImapMailbox(settings_for(peer))
    check = await box.check()
    await box.aclose()

    assert check.ok and "'INBOX'" in check.detail and "replies@shop.example" in check.detail


def test_imap_settings_default_off_and_never_show_the_password() -> None:
    assert not EmailSettings().imap_enabled
    settings = EmailSettings(imap_host="imap.shop.example", imap_password=SecretStr(PASSWORD))
    assert settings.imap_enabled and (settings.imap_port, settings.imap_security) == (993, "tls")
    assert PASSWORD not in repr(settings) and PASSWORD not in repr(ImapMailbox(settings))


# -- through the poller, into the database -------------------------------------------------------


async def stored(sessions: SessionFactory) -> list[InboundRecord]:
    async with sessions() as session:
        return list(await session.exec(select(InboundRecord)))


async def test_the_poller_stores_a_reply_once_across_two_polls(
    sessions: SessionFactory, peer: ImapPeer, mailbox: ImapMailbox
) -> None:
    peer.append(payload("gmail_reply_fr.eml"))
    peer.append(payload("auto_reply_ooo.eml"))
    poller = Poller(sessions, {"email:imap": mailbox.poll}, interval=30)

    assert await poller.poll_once() == 1
    assert await poller.poll_once() == 0
    peer.change_uidvalidity()  # the mailbox is read again from the start: still stored once
    assert await poller.poll_once() == 0

    [record] = await stored(sessions)
    assert (record.channel, record.conversation_key) == ("email", TOKEN)
    assert record.text.startswith("Bonjour,")
    assert (await load_cursor(sessions, "email:imap")).endswith(":2")


async def test_a_reply_sent_to_our_from_address_is_threaded_by_the_message_it_answers(
    database_url: str, sessions: SessionFactory, peer: ImapPeer
) -> None:
    with SmtpPeer() as smtp:
        settings = live_settings(database_url, smtp, None)
        await subscribe(
            sessions,
            settings,
            [NewSubscriber(email="marie.dupont@gmail.example", locale="fr", name="Marie", line=2)],
        )
        opening = draft("investigating", "Paiement en panne, désolés.", "Sorry.")
        opened = await open_(sessions, settings, opening, force=True)
        await deliver(sessions, settings, opened)
    async with sessions() as session:
        sent = (await session.exec(select(Delivery).where(Delivery.channel == "email"))).one()
        subscription = (await session.exec(select(Subscription))).one()
    # Her client ignored Reply-To: the reply goes to status@ — only In-Reply-To names our e-mail.
    peer.append(reply(to="status@shop.example", in_reply_to="", References=sent.provider_message_id))

    async def thread_of(message_ids: list[str]) -> str:
        return await reply_address_for(sessions, message_ids, DOMAIN)

    box = ImapMailbox(settings_for(peer), thread_of=thread_of)
    [message], _cursor = await box.poll("")
    assert message.conversation_key == subscription.reply_token
    assert message.raw["update_id"] == opened.update.id  # linked to the incident it answers
    peer.append(reply(to="status@shop.example", message_id="<r2@gmail.example>", in_reply_to="<x@elsewhere>"))
    assert (await box.poll(_cursor))[0] == []  # answers nothing of ours: not a reply
