"""A reply e-mail cannot speak for someone else, and machine-made mail never acts.

Through the real SMTP listener: a leaked reply token (it travels in every broadcast's Reply-To)
with a forged From, a wrong update id, automatic mail of every kind, and mail for postmaster.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

import aiosmtplib
import pytest
from sqlmodel import col, select

from broadcaster.cli.views import conversation_text
from broadcaster.config import Settings
from broadcaster.db import SessionFactory
from broadcaster.delivery.subscribers import NewSubscriber
from broadcaster.inbox.actions import reply
from broadcaster.inbox.bot import StatusBot
from broadcaster.inbox.filing import conversation_with_messages, file_pending, message_dict
from broadcaster.models import Conversation, Delivery, Message, Subscription
from broadcaster.web.app import inbound_email_listener
from tests.conftest import make_settings
from tests.e2e.helpers import deliver, draft, open_, subscribe
from tests.peers.smtp import free_port

pytestmark = pytest.mark.slow

PAYLOADS = Path(__file__).parent.parent / "payloads" / "email"
DOMAIN = "reply.shop.example"
CUSTOMER = "camille@example.com"
STAFF = "oncall@shop.example"
AUTHSERV = "mx.shop.example"  # the DMARC-checking MTA in front of the listener


@dataclass
class Shop:
    settings: Settings
    sessions: SessionFactory
    address: str  # the reply address the broadcast carried
    update_id: int
    token: str
    client: aiosmtplib.SMTP

    async def send(self, raw: bytes, *, sender: str = "someone@elsewhere.example", to: str = "") -> None:
        errors, _ = await self.client.sendmail(sender, [to or self.address], raw)
        assert errors == {}

    async def file(self) -> None:
        await file_pending(self.sessions, bot=StatusBot(self.settings))

    async def subscribed(self) -> bool:
        async with self.sessions() as session:
            return (await session.exec(select(Subscription))).one().active

    async def incoming(self) -> list[Message]:
        async with self.sessions() as session:
            statement = select(Message).where(Message.direction == "in").order_by(col(Message.id))
            return list(await session.exec(statement))

    async def answers(self) -> list[Message]:
        async with self.sessions() as session:
            return list(await session.exec(select(Message).where(Message.direction == "out")))


@pytest.fixture
async def shop(
    database_url: str, sessions: SessionFactory, request: pytest.FixtureRequest
) -> AsyncIterator[Shop]:
    port = free_port()
    email: dict[str, object] = {"inbound_enabled": True, "inbound_port": port, "reply_domain": DOMAIN}
    if getattr(request, "param", ""):
        email["inbound_authserv_id"] = request.param
    settings = make_settings(database_url, channels={"email": email}, staff={"email": STAFF})
    await subscribe(sessions, settings, [NewSubscriber(email=CUSTOMER, name="Camille", line=2)])
    opening = draft("investigating", "Le paiement échoue. Désolés, on enquête.", "Payment fails. Sorry.")
    opened = await open_(sessions, settings, opening, force=True)
    await deliver(sessions, settings, opened)
    async with sessions() as session:
        token = (await session.exec(select(Subscription.reply_token))).one()
    assert opened.update.id is not None
    listener = inbound_email_listener(settings, sessions)
    assert listener is not None
    async with listener:
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, local_hostname="client.example")
        await client.connect()
        try:
            yield Shop(settings, sessions, f"reply+{opened.update.id}.{token}@{DOMAIN}", opened.update.id,
                       token, client)  # fmt: skip
        finally:
            await client.quit()


def mail(
    sender: str,
    text: str,
    *,
    name: str = "",
    message_id: str = "<r1@mail.example>",
    results: tuple[str, ...] = (),
    subject: str = "Re: [Maison Exemple] Paiement : nous enquêtons",
) -> bytes:
    message = EmailMessage()
    for result in results:  # topmost first, as each MTA prepends its own
        message["Authentication-Results"] = result
    message["From"] = f"{name} <{sender}>" if name else sender
    message["To"] = "reply@example"
    message["Subject"] = subject
    message["Message-ID"] = message_id
    message.set_content(text)
    return bytes(message)


async def test_a_forged_from_with_a_leaked_token_is_unverified_and_never_acts(shop: Shop) -> None:
    phishing = "Votre compte sera fermé : appelez le +33 1 23 45 67 89"
    forged = mail("mallory@evil.example", "stop", name="Mallory", subject=phishing)
    await shop.send(forged, sender="mallory@evil.example")
    await shop.file()

    assert await shop.subscribed()  # no unsubscribe
    assert await shop.answers() == []  # no bot answer
    (message,) = await shop.incoming()
    assert message.trust == "unverified" and message.intent == "unsubscribe"
    async with shop.sessions() as session:
        conversation = (await session.exec(select(Conversation))).one()
    assert conversation.customer_handle == CUSTOMER and conversation.customer_name != "Mallory"

    answer = await reply(shop.sessions, shop.settings, conversation.id or 0, text="Bonjour", canned=None,
                         author="Agent")  # fmt: skip
    async with shop.sessions() as session:
        delivery = (await session.exec(select(Delivery).where(Delivery.message_id == answer.id))).one()
    assert delivery.reply["customer_handle"] == CUSTOMER  # what the e-mail channel answers to
    assert delivery.reply["subject"] == ""  # not the forger's words: the default subject

    # The subscriber themselves, from their own address: a deliberate, verified request acts.
    await shop.send(mail(CUSTOMER.upper(), "STOP", message_id="<r2@example.com>"), sender=CUSTOMER)
    await shop.file()
    assert not await shop.subscribed()
    assert [m.trust for m in await shop.incoming()] == ["unverified", "verified"]


async def test_a_leaked_token_with_another_update_id_is_refused_at_rcpt(shop: Shop) -> None:
    for update_id in (shop.update_id + 1, 0):
        with pytest.raises(aiosmtplib.SMTPRecipientsRefused) as refused:
            await shop.send(mail(CUSTOMER, "stop"), to=f"reply+{update_id}.{shop.token}@{DOMAIN}")
        assert refused.value.recipients[0].code == 550  # as for an unknown token: no oracle
    await shop.file()
    assert await shop.incoming() == [] and await shop.subscribed()


@pytest.mark.parametrize(
    ("payload", "sender", "filed"),
    [
        ("ses_bounce_sns.eml", "0100019a7c3e@eu-west-1.amazonses.com", True),  # its body says so
        ("vacation_headerless_fr.eml", CUSTOMER, True),
        ("auto_generated_subject.eml", CUSTOMER, True),
        ("forwarded_dsn.eml", "srs0=hh2k=relay.example=mailer-daemon@fwd.example", False),
        ("arf_report.eml", "fbl@feedback.isp.example", False),
        ("mailman_error.eml", "shop-news-bounces@lists.example", False),
    ],
)
async def test_machine_made_mail_never_acts_nor_gets_an_answer(
    shop: Shop, payload: str, sender: str, filed: bool
) -> None:
    await shop.send((PAYLOADS / payload).read_bytes(), sender=sender)
    await shop.file()

    assert await shop.subscribed()
    assert await shop.answers() == []
    incoming = await shop.incoming()
    if filed:  # only its content says so: filed for an agent to see, marked automated
        assert [(m.trust, m.intent) for m in incoming] == [("automated", "other")]
    else:  # it declares itself automatic (a report, a list): accepted and dropped, as before
        assert incoming == []


async def test_a_bounce_a_person_forwards_with_a_note_keeps_the_note_for_an_agent(shop: Shop) -> None:
    await shop.send((PAYLOADS / "forwarded_bounce_with_note.eml").read_bytes(), sender=CUSTOMER)
    await shop.file()

    (message,) = await shop.incoming()  # not dropped: the bounce is attached, the note is hers
    assert (message.trust, message.intent) == ("automated", "other")
    assert message.text.startswith("Bonjour, j'ai écrit à votre service client pour ma commande 48213")
    assert await shop.subscribed() and await shop.answers() == []


@pytest.mark.parametrize("recipient", [f"postmaster@{DOMAIN}", f"PostMaster@{DOMAIN.upper()}", "postmaster"])
async def test_postmaster_is_accepted_and_goes_to_the_staff_email(shop: Shop, recipient: str) -> None:
    raw = (PAYLOADS / "forwarded_dsn.eml").read_bytes()
    await shop.send(raw, sender="", to=recipient)

    async with shop.sessions() as session:
        (alert,) = await session.exec(select(Delivery).where(Delivery.target == STAFF))
    assert alert.channel == "email" and "Undelivered Mail Returned to Sender" in alert.payload
    assert "5.1.1 user unknown" in alert.payload  # the DSN's machine-readable part is kept
    assert await shop.incoming() == [] and await shop.subscribed()


async def test_agents_see_which_messages_are_unverified_or_automated(shop: Shop) -> None:
    await shop.send(mail("mallory@evil.example", "stop"), sender="mallory@evil.example")
    await shop.send((PAYLOADS / "vacation_headerless_fr.eml").read_bytes(), sender=CUSTOMER)
    await shop.file()
    found = await conversation_with_messages(shop.sessions, 1)
    assert found is not None
    conversation, messages = found
    assert [message_dict(m)["trust"] for m in messages] == ["unverified", "automated"]
    shown = conversation_text(conversation, messages, "Europe/Paris").plain
    assert "[unverified] stop" in shown and "[automated] Bonjour" in shown


@pytest.mark.parametrize("shop", [AUTHSERV], indirect=True)
async def test_behind_a_dmarc_checking_mta_only_an_authentic_from_acts(shop: Shop) -> None:
    # The forwarded e-mail showed the subscriber's address too: the forger uses it exactly, and
    # adds a "pass" of their own below the "fail" our MTA wrote on top.
    forged = (
        f"{AUTHSERV}; dmarc=fail header.from=example.com",
        f"{AUTHSERV}; dmarc=pass header.from=example.com",
    )
    await shop.send(mail(CUSTOMER, "stop", results=forged), sender=CUSTOMER)
    await shop.send(mail(CUSTOMER, "stop", message_id="<r2@example.com>"), sender=CUSTOMER)  # no verdict
    await shop.file()
    assert await shop.subscribed() and await shop.answers() == []
    assert [m.trust for m in await shop.incoming()] == ["unverified", "unverified"]

    authentic = (f"{AUTHSERV}; dkim=pass header.d=example.com; dmarc=pass header.from=example.com",)
    await shop.send(mail(CUSTOMER, "stop", message_id="<r3@example.com>", results=authentic), sender=CUSTOMER)
    await shop.file()
    assert not await shop.subscribed()
    assert [m.trust for m in await shop.incoming()][-1] == "verified"


async def test_an_auto_reply_does_not_reopen_an_answered_conversation(shop: Shop) -> None:
    await shop.send(mail(CUSTOMER, "le site est en panne ?"), sender=CUSTOMER)
    await shop.file()
    assert len(await shop.answers()) == 1  # the bot answered: waiting for the customer
    await shop.send((PAYLOADS / "vacation_headerless_fr.eml").read_bytes(), sender=CUSTOMER)
    await shop.file()
    async with shop.sessions() as session:
        assert (await session.exec(select(Conversation))).one().status == "pending"
    assert len(await shop.answers()) == 1
