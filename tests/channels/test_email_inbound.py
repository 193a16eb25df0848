"""Inbound e-mail: the SMTP listener over a real socket (aiosmtplib client), and pure parsing."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from datetime import UTC
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aiosmtplib
import pytest
import trustme

from channels.base import InboundMessage
from channels.email.html import MAX_HTML_CHARS
from channels.email.inbound import (
    InboundSmtpServer,
    html_to_text,
    is_automatic,
    parse_reply,
    parse_reply_address,
    strip_quotes,
)
from channels.email.parse import parse_message

PAYLOADS = Path(__file__).resolve().parent.parent / "payloads" / "email"
DOMAIN = "reply.shop.example"
TOKEN = "3f9c2a7b1d4e8f60"
REPLY_ADDRESS = f"reply+42.{TOKEN}@{DOMAIN}"
OUR_MESSAGE_ID = "<6192fefbc4104cdfb76009a9ae63958b@shop.example>"
CUSTOMER = "marie.dupont@gmail.example"
TIMEOUT = 10.0  # seconds: an upper bound for a client call, never an expectation about speed


def payload(name: str) -> bytes:
    return (PAYLOADS / name).read_bytes()


class Inbox:
    """What `on_message` received, and whether it should fail (the inbox being down)."""

    def __init__(self) -> None:
        self.messages: list[InboundMessage] = []
        self.loops: list[asyncio.AbstractEventLoop] = []
        self.failing = False

    async def __call__(self, message: InboundMessage) -> None:
        self.loops.append(asyncio.get_running_loop())
        if self.failing:
            raise RuntimeError("database is down")
        self.messages.append(message)


@pytest.fixture
def inbox() -> Inbox:
    return Inbox()


@pytest.fixture
async def server(inbox: Inbox) -> AsyncIterator[InboundSmtpServer]:
    async with InboundSmtpServer("127.0.0.1", 0, DOMAIN, inbox, max_bytes=64 * 1024) as listener:
        yield listener


def client(server: InboundSmtpServer, **kwargs: Any) -> aiosmtplib.SMTP:
    options: dict[str, Any] = {"start_tls": False, **kwargs}
    return aiosmtplib.SMTP(
        hostname=server.host, port=server.port, local_hostname="client.localhost", timeout=TIMEOUT, **options
    )


async def send(
    server: InboundSmtpServer, raw: bytes, recipients: list[str], sender: str = CUSTOMER
) -> tuple[dict[str, Any], str]:
    async with client(server) as smtp:
        return await smtp.sendmail(sender, recipients, raw)


def reply(body: str, *, html: str = "", message_id: str = "<r1@gmail.example>") -> bytes:
    email = EmailMessage()
    email["From"] = f"Marie Dupont <{CUSTOMER}>"
    email["To"] = REPLY_ADDRESS
    email["Subject"] = "Re: Incident en cours"
    email["Message-ID"] = message_id
    email["In-Reply-To"] = OUR_MESSAGE_ID
    email["Date"] = "Tue, 12 Nov 2026 14:07:18 +0100"
    if body:
        email.set_content(body)
    if html:
        email.add_alternative(html, subtype="html") if body else email.set_content(html, subtype="html")
    return email.as_bytes()


# -- the listener over the network ---------------------------------------------------------------


async def test_a_reply_is_delivered_with_new_text_only(server: InboundSmtpServer, inbox: Inbox) -> None:
    errors, response = await send(server, payload("gmail_reply_fr.eml"), [REPLY_ADDRESS])

    assert errors == {}
    assert response.startswith("2.0.0")
    [message] = inbox.messages
    assert message.channel == "email"
    assert message.conversation_key == TOKEN
    assert message.reply_to == OUR_MESSAGE_ID
    assert message.customer_handle == CUSTOMER
    assert message.text == (
        "Bonjour,\n\nMa commande n° 10452 a été débitée deux fois pendant la panne.\nPouvez-vous vérifier ?"
    )
    assert inbox.loops == [asyncio.get_running_loop()]  # on_message runs on the caller's loop


@pytest.mark.parametrize(
    "recipient",
    [
        f"someone@{DOMAIN}",  # our domain, not a reply address
        f"reply+42.not-hex@{DOMAIN}",
        f"reply+x.{TOKEN}@{DOMAIN}",
        f"reply+42.{TOKEN}@elsewhere.example",  # another domain: never an open relay
        "victim@gmail.example",
    ],
)
async def test_unknown_recipients_are_refused(
    server: InboundSmtpServer, inbox: Inbox, recipient: str
) -> None:
    with pytest.raises(aiosmtplib.SMTPRecipientsRefused) as refused:
        await send(server, reply("Bonjour"), [recipient])

    [error] = refused.value.recipients
    assert (error.code, error.message) == (550, "5.1.1 unknown recipient")
    assert inbox.messages == []


async def test_the_reply_domain_is_case_insensitive(server: InboundSmtpServer, inbox: Inbox) -> None:
    await send(server, reply("Toujours en panne ?"), [f"Reply+42.{TOKEN.upper()}@Reply.Shop.Example"])

    assert [m.conversation_key for m in inbox.messages] == [TOKEN]


@pytest.mark.parametrize(
    ("name", "sender"),
    [
        ("auto_reply_ooo.eml", "c.bernard@entreprise.example"),
        ("bounce_dsn.eml", ""),
        ("bulk_newsletter.eml", "b@x.example"),
    ],
)
async def test_automatic_mail_is_accepted_and_dropped(
    server: InboundSmtpServer, inbox: Inbox, name: str, sender: str
) -> None:
    errors, response = await send(server, payload(name), [REPLY_ADDRESS], sender=sender)

    assert errors == {}
    assert "automatic message ignored" in response
    assert inbox.messages == []


async def test_a_too_big_message_is_refused_at_mail_when_the_client_announces_its_size(
    server: InboundSmtpServer, inbox: Inbox
) -> None:
    big = reply("x" * 70 + ("\n" + "y" * 70) * 1000)

    with pytest.raises(aiosmtplib.SMTPSenderRefused) as refused:
        await send(server, big, [REPLY_ADDRESS])

    assert (refused.value.code, refused.value.message) == (552, "5.3.4 message too big")
    assert inbox.messages == []


async def test_a_too_big_message_is_refused_after_data_without_size(
    server: InboundSmtpServer, inbox: Inbox
) -> None:
    big = reply("x" * 70 + ("\n" + "y" * 70) * 1000)
    async with client(server) as smtp:
        await smtp.ehlo()
        assert smtp.supports_extension("size")
        await smtp.mail(CUSTOMER)  # no SIZE= parameter: the server finds out while reading
        await smtp.rcpt(REPLY_ADDRESS)
        with pytest.raises(aiosmtplib.SMTPDataError) as refused:
            await smtp.data(big)

    assert (refused.value.code, refused.value.message) == (552, "5.3.4 message too big")
    assert inbox.messages == []


async def test_a_failing_inbox_gets_451_and_the_retry_delivers_once(
    server: InboundSmtpServer, inbox: Inbox
) -> None:
    inbox.failing = True
    with pytest.raises(aiosmtplib.SMTPDataError) as refused:
        await send(server, payload("gmail_reply_fr.eml"), [REPLY_ADDRESS])
    assert (refused.value.code, refused.value.message) == (451, "4.3.0 try again later")
    assert inbox.messages == []

    inbox.failing = False
    await send(server, payload("gmail_reply_fr.eml"), [REPLY_ADDRESS])

    assert [m.external_id for m in inbox.messages] == ["<CAF3x9Hq2v+Yk1pLr0aQ7mZ5nT8e@mail.gmail.example>"]


async def test_an_html_only_reply_becomes_text(server: InboundSmtpServer, inbox: Inbox) -> None:
    await send(server, payload("html_only_reply.eml"), [f"reply+43.0123456789abcdef@{DOMAIN}"])

    [message] = inbox.messages
    assert message.text == (
        "Bonjour,\n\nLa maintenance dure encore ?\n"
        "J'ai tapé <script>alert(1)</script> dans le champ promo & rien."
    )


HOSTILE_HTML = "<a b='" * (1024 * 1024 // 6)  # 1 MiB of unclosed attributes: an hour of CPU for html.parser


async def test_a_hostile_html_reply_is_filed_and_another_session_completes_meanwhile(inbox: Inbox) -> None:
    hostile = reply("", html="<p>Toujours en panne</p>" + HOSTILE_HTML, message_id="<hostile@proton.example>")
    calm = reply("Merci pour l'info", message_id="<calm@gmail.example>")

    async with InboundSmtpServer("127.0.0.1", 0, DOMAIN, inbox, max_bytes=4 * 1024 * 1024) as listener:
        results = await asyncio.gather(
            send(listener, hostile, [REPLY_ADDRESS]), send(listener, calm, [REPLY_ADDRESS])
        )

    assert [errors for errors, _ in results] == [{}, {}]
    assert sorted((m.external_id, m.text) for m in inbox.messages) == [
        ("<calm@gmail.example>", "Merci pour l'info"),
        ("<hostile@proton.example>", "Toujours en panne"),
    ]


async def test_a_message_not_parsed_in_time_gets_451_and_the_retry_delivers(inbox: Inbox) -> None:
    async with InboundSmtpServer("127.0.0.1", 0, DOMAIN, inbox, parse_seconds=0) as listener:
        with pytest.raises(aiosmtplib.SMTPDataError) as refused:
            await send(listener, reply("Toujours en panne ?"), [REPLY_ADDRESS])
    assert (refused.value.code, refused.value.message) == (451, "4.3.0 try again later")
    assert inbox.messages == []

    async with InboundSmtpServer("127.0.0.1", 0, DOMAIN, inbox) as listener:
        await send(listener, reply("Toujours en panne ?"), [REPLY_ADDRESS])
    assert [m.text for m in inbox.messages] == ["Toujours en panne ?"]


def long_line_reply(line: str) -> bytes:
    """A reply whose text part is sent as is (8bit), one line of `line`: as some clients send HTML."""
    head = (
        f"From: Marie Dupont <{CUSTOMER}>\r\nTo: {REPLY_ADDRESS}\r\nSubject: Re: Incident en cours\r\n"
        "Message-ID: <long-line@gmail.example>\r\nMIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
    )
    return f"{head}{line}\r\n".encode()


async def test_a_3000_octet_line_is_accepted_end_to_end(server: InboundSmtpServer, inbox: Inbox) -> None:
    line = ("Le panier se vide à chaque étape du paiement, " * 70).strip()
    assert len(line.encode()) > 3000

    errors, response = await send(server, long_line_reply(line), [REPLY_ADDRESS])

    assert (errors, response.split()[0]) == ({}, "2.0.0")
    assert [m.text for m in inbox.messages] == [line]


async def test_a_line_longer_than_the_size_limit_is_too_big(server: InboundSmtpServer, inbox: Inbox) -> None:
    async with client(server) as smtp:
        await smtp.ehlo()
        await smtp.mail(CUSTOMER)  # no SIZE=: the server finds out while reading the line
        await smtp.rcpt(REPLY_ADDRESS)
        with pytest.raises(aiosmtplib.SMTPDataError) as refused:
            await smtp.data(long_line_reply("x" * (server.max_bytes + 10)))

    assert (refused.value.code, refused.value.message) == (552, "5.3.4 message too big")
    assert inbox.messages == []


async def test_script_in_a_text_body_stays_literal(server: InboundSmtpServer, inbox: Inbox) -> None:
    body = 'Le code <script>alert("x")</script> &amp; <b>gras</b> ne marche pas'
    await send(server, reply(body), [REPLY_ADDRESS])

    assert [m.text for m in inbox.messages] == [body]


async def test_a_message_to_two_updates_of_one_subscriber_is_one_message(
    server: InboundSmtpServer, inbox: Inbox
) -> None:
    other = "0123456789abcdef"
    recipients = [REPLY_ADDRESS, f"reply+41.{TOKEN}@{DOMAIN}", f"reply+41.{other}@{DOMAIN}"]
    await send(server, reply("Merci"), recipients)

    assert sorted((m.conversation_key, m.external_id) for m in inbox.messages) == [
        (other, f"<r1@gmail.example>#{other}"),
        (TOKEN, f"<r1@gmail.example>#{TOKEN}"),
    ]


async def test_starttls_is_offered_when_a_context_is_given(inbox: Inbox) -> None:
    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)

    async with InboundSmtpServer("127.0.0.1", 0, DOMAIN, inbox, tls_context=context) as listener:
        smtp = client(listener, start_tls=True, tls_context=client_context)
        async with smtp:
            await smtp.sendmail(CUSTOMER, [REPLY_ADDRESS], reply("Chiffré"))
            assert smtp.is_connected and smtp.get_transport_info("sslcontext") is not None

    assert [m.text for m in inbox.messages] == ["Chiffré"]


async def test_lifecycle_and_repr(inbox: Inbox) -> None:
    listener = InboundSmtpServer("127.0.0.1", 0, DOMAIN, inbox)
    await listener.start()
    with pytest.raises(RuntimeError):
        await listener.start()
    await listener.stop()
    await listener.stop()  # idempotent
    assert repr(listener).startswith("InboundSmtpServer(host='127.0.0.1'")


# -- pure parsing --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "recipient", "expected"),
    [
        (
            "gmail_reply_fr.eml",
            REPLY_ADDRESS,
            {
                "text": "Bonjour,\n\nMa commande n° 10452 a été débitée deux fois pendant la panne.\n"
                "Pouvez-vous vérifier ?",
                "customer_name": "Marie Dupont",
                "reply_to": OUR_MESSAGE_ID,
                "language": "",
            },
        ),
        (
            "outlook_reply_fr.eml",
            f"reply+42.a0b1c2d3e4f50617@{DOMAIN}",
            {
                "text": "Bonjour,\n\nEst-ce que je peux commander par téléphone en attendant ?\n\n"
                "Cordialement,\nJean Martin",
                "customer_handle": "j.martin@outlook.example",
                "reply_to": "<550cbb964c4caeebcc560b73bd0d7304@shop.example>",
                "language": "fr-FR",
            },
        ),
        (
            "html_only_reply.eml",
            f"reply+43.0123456789abcdef@{DOMAIN}",
            {
                "customer_name": "Dupont, Luc",
                "reply_to": "<bbbb@shop.example>",
                "conversation_key": "0123456789abcdef",
            },
        ),
        (
            "reply_with_attachment.eml",
            f"reply+42.fedcba9876543210@{DOMAIN}",
            {
                "text": "Still broken for me, see the screenshot: the basket is empty after login.",
                "language": "en-GB",
                "reply_to": "<b2c3019f76ee0c42b8ce540d4c59df7d@shop.example>",
            },
        ),
    ],
)
def test_parse_recorded_replies(name: str, recipient: str, expected: dict[str, str]) -> None:
    [message] = parse_reply(payload(name), [recipient], DOMAIN, mail_from="sender@example.org")

    assert {key: getattr(message, key) for key in expected} == expected
    assert message.received_at.tzinfo is UTC
    assert message.raw["update_id"] in (42, 43)
    assert message.raw["token"] == message.conversation_key


def test_parse_lists_attachments_and_keeps_headers() -> None:
    [message] = parse_reply(
        payload("reply_with_attachment.eml"), [f"reply+42.fedcba9876543210@{DOMAIN}"], DOMAIN, mail_from="t@x"
    )

    assert message.raw["attachments"] == ["basket-empty.png"]
    assert message.raw["subject"] == "Re: Incident: checkout unavailable"
    assert message.external_id == "<8E1D2C3B-4A59-4F6E-8D7C-6B5A4F3E2D1C@icloud.example>"
    assert message.received_at.isoformat() == "2026-11-12T13:20:05+00:00"


def test_parse_without_message_id_or_date_hashes_the_bytes() -> None:
    raw = b"From: a@b.example\r\nSubject: hi\r\n\r\nToujours en panne ?\r\n"

    [message] = parse_reply(raw, [REPLY_ADDRESS], DOMAIN, mail_from="a@b.example")

    assert message.external_id.startswith("sha256:") and len(message.external_id) == 7 + 64
    assert message.received_at.tzinfo is UTC
    assert message.reply_to == ""


def test_parse_ignores_recipients_that_are_not_reply_addresses() -> None:
    assert (
        parse_reply(reply("x"), ["a@b.example", f"reply+1.{TOKEN}@other.example"], DOMAIN, mail_from="") == []
    )


@pytest.mark.parametrize(
    ("name", "mail_from", "reason"),
    [
        ("auto_reply_ooo.eml", "c.bernard@entreprise.example", "Auto-Submitted: auto-replied"),
        ("bounce_dsn.eml", "<>", "Auto-Submitted: auto-replied"),
        ("bulk_newsletter.eml", "bounces@news.partner.example", "Precedence: bulk"),
        ("gmail_reply_fr.eml", CUSTOMER, ""),
        ("outlook_reply_fr.eml", "j.martin@outlook.example", ""),
        ("html_only_reply.eml", "luc@proton.example", ""),
        ("reply_with_attachment.eml", "tom@icloud.example", ""),
    ],
)
def test_is_automatic_on_recorded_messages(name: str, mail_from: str, reason: str) -> None:
    assert is_automatic(parse_message(payload(name)), mail_from) == reason


@pytest.mark.parametrize(
    ("headers", "mail_from", "reason"),
    [
        ({"Auto-Submitted": "no"}, CUSTOMER, ""),
        ({"Auto-Submitted": "auto-generated"}, CUSTOMER, "Auto-Submitted: auto-generated"),
        ({"Precedence": "junk"}, CUSTOMER, "Precedence: junk"),
        ({}, "", "null envelope sender"),
        ({}, "<>", "null envelope sender"),
        ({}, "MAILER-DAEMON@mx.example", "sent by mailer-daemon"),
        ({"From": "postmaster@mx.example"}, CUSTOMER, "sent by postmaster"),
        (
            {"Content-Type": 'multipart/report; report-type=disposition-notification; boundary="b"'},
            CUSTOMER,
            "multipart/report (disposition-notification)",
        ),
        ({"X-Autoreply": "yes"}, CUSTOMER, "X-Autoreply present"),
        ({"X-Autorespond": "Vacation"}, CUSTOMER, "X-Autorespond present"),
        ({"X-Auto-Response-Suppress": "DR, OOF, AutoReply"}, CUSTOMER, "X-Auto-Response-Suppress: oof"),
        ({"X-Auto-Response-Suppress": "DR, RN"}, CUSTOMER, ""),
        ({"List-Id": "<deals.example>"}, CUSTOMER, "mailing list (List-Id)"),
        ({"List-Unsubscribe": "<https://x.example/u>"}, CUSTOMER, "mailing list (List-Unsubscribe)"),
    ],
)
def test_is_automatic_rules(headers: dict[str, str], mail_from: str, reason: str) -> None:
    lines = {"From": f"Marie <{CUSTOMER}>", "Subject": "Re: panne", **headers}
    raw = "".join(f"{k}: {v}\r\n" for k, v in lines.items()) + "\r\nBonjour\r\n"

    assert is_automatic(parse_message(raw.encode()), mail_from) == reason


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        (REPLY_ADDRESS, (42, TOKEN)),
        (f"<REPLY+42.{TOKEN.upper()}@REPLY.SHOP.EXAMPLE.>", (42, TOKEN)),
        (f"reply+42.{TOKEN}@reply.shop.example.evil.example", None),
        (f"reply+42.{TOKEN}@{DOMAIN}@evil.example", None),
        (f"reply+42@{DOMAIN}", None),
        (f"xreply+42.{TOKEN}@{DOMAIN}", None),
        ("", None),
    ],
)
def test_parse_reply_address(address: str, expected: tuple[int, str] | None) -> None:
    assert parse_reply_address(address, DOMAIN) == expected


def test_html_to_text_drops_quotes_scripts_and_keeps_entities_literal() -> None:
    html = (
        "<div>Bonjour<br>le site&nbsp;est <b>lent</b></div><script>alert(1)</script>"
        "<blockquote><div>vieux <blockquote>très vieux</blockquote></div></blockquote><p>&lt;i&gt; fin</p>"
    )

    assert html_to_text(html) == "Bonjour\nle site est lent\n\n<i> fin"


def test_html_to_text_reads_only_the_first_max_html_chars() -> None:
    html = "<p>Toujours en panne</p>" + "<p>" + "x" * MAX_HTML_CHARS + "</p><p>jamais lu</p>"

    text = html_to_text(html)

    assert text.startswith("Toujours en panne\n\nxxx") and "jamais lu" not in text
    assert html_to_text(HOSTILE_HTML) == ""
    assert html_to_text("<!-- rien -->") == html_to_text("  ") == ""


def test_outlook_html_part_is_cut_at_its_header_block() -> None:
    message = parse_message(payload("outlook_reply_fr.eml"))
    html = message.get_body(preferencelist=("html",))
    assert html is not None

    text = strip_quotes(html_to_text(str(html.get_content())))

    assert (
        text
        == "Bonjour,\nEst-ce que je peux commander par téléphone en attendant ?\nCordialement,\nJean Martin"
    )
