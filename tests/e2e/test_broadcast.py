"""Open → update → resolve with 200 subscribers on real SMTP and Bot API peers, both locales."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest
from sqlmodel import select

from broadcaster.db import SessionFactory
from broadcaster.models import CapturedMessage, utcnow
from tests.e2e.helpers import deliver, draft, follow_up, live_settings, open_, people, resolve, subscribe
from tests.peers.smtp import SmtpPeer
from tests.peers.telegram import TelegramPeer

pytestmark = pytest.mark.slow

FR_OPEN = "Le paiement échoue pour une partie d'entre vous. Nous sommes désolés et nous enquêtons."
EN_OPEN = "Payment is failing for some of you. We are sorry and we are investigating."
FR_FIX = "Nous avons trouvé la cause et un correctif est en cours de déploiement."
EN_FIX = "We found the cause and a fix is being rolled out."
FR_DONE = "Le paiement fonctionne de nouveau. Merci pour votre patience."
EN_DONE = "Payment works again. Thank you for your patience."


def _email_by_update(smtp: SmtpPeer) -> dict[str, list[tuple[str, object]]]:
    by_rcpt: dict[str, list[tuple[str, object]]] = {}
    for _sender, rcpts, message in smtp.messages:
        for rcpt in rcpts:
            by_rcpt.setdefault(rcpt, []).append((str(message["Message-ID"]), message))
    return by_rcpt


async def test_every_subscriber_gets_one_message_per_update_in_their_locale(
    database_url: str, sessions: SessionFactory, smtp: SmtpPeer, telegram: TelegramPeer
) -> None:
    settings = live_settings(database_url, smtp, telegram)
    subscribers = people(200)
    await subscribe(sessions, settings, subscribers)
    eta = utcnow() + timedelta(minutes=30)
    steps = [
        ("open", FR_OPEN, EN_OPEN),
        ("update", FR_FIX, EN_FIX),
        ("resolve", FR_DONE, EN_DONE),
    ]
    incident_id = 0
    for step, fr, en in steps:
        if step == "open":
            published = await open_(
                sessions, settings, draft("investigating", fr, en, eta_at=eta, next_update_at=eta)
            )
            incident_id = published.incident.id or 0
        elif step == "update":
            published = await follow_up(
                sessions, settings, incident_id, draft("identified", fr, en, eta_at=eta, next_update_at=eta)
            )
        else:
            published = await resolve(
                sessions, settings, incident_id, draft("resolved", fr, en, compensation="MERCI10")
            )
        counts = await deliver(sessions, settings, published)
        assert counts["email"] == {"sent": 100}, step
        assert counts["telegram"] == {"sent": 101}, step  # 100 chats + the public channel post

    # E-mail: exactly three distinct messages per address, each in the subscriber's language.
    by_rcpt = _email_by_update(smtp)
    emails = [s for s in subscribers if s.email]
    assert set(by_rcpt) == {s.email for s in emails}
    for subscriber in emails:
        received = by_rcpt[subscriber.email]
        assert len(received) == 3 and len({mid for mid, _ in received}) == 3
        texts = [msg.get_body(("plain",)).get_content() for _, msg in received]  # type: ignore[attr-defined]
        expected = (FR_OPEN, FR_FIX, FR_DONE) if subscriber.locale == "fr" else (EN_OPEN, EN_FIX, EN_DONE)
        for text, wanted in zip(texts, expected, strict=True):
            assert wanted in text
        assert all(msg["Content-Language"] == subscriber.locale for _, msg in received)  # type: ignore[index]

    # Telegram: three messages per chat, in order, in the chat's language; three channel posts.
    chats = [s for s in subscribers if s.telegram_chat_id]
    for subscriber in chats:
        texts = telegram.texts(subscriber.telegram_chat_id)
        expected = (FR_OPEN, FR_FIX, FR_DONE) if subscriber.locale == "fr" else (EN_OPEN, EN_FIX, EN_DONE)
        assert len(texts) == 3
        for text, wanted in zip(texts, expected, strict=True):
            assert wanted.replace("'", "'") in text
    assert len(telegram.texts("@shop_status")) == 3

    # Channels without credentials captured exactly one message per update.
    async with sessions() as session:
        captured = Counter(c.channel for c in await session.exec(select(CapturedMessage)))
    assert captured == {"twitter": 3, "facebook": 3, "push": 3, "blog": 3}


async def test_broadcast_emails_are_valid_mime_with_list_and_reply_headers(
    database_url: str, sessions: SessionFactory, smtp: SmtpPeer
) -> None:
    settings = live_settings(database_url, smtp, None)
    await subscribe(sessions, settings, people(4))  # two e-mail subscribers
    published = await open_(sessions, settings, draft("investigating", FR_OPEN, EN_OPEN))
    await deliver(sessions, settings, published)
    assert len(smtp.messages) == 2
    for _sender, _rcpts, message in smtp.messages:
        assert message.get_content_type() == "multipart/alternative"
        kinds = [part.get_content_type() for part in message.iter_parts()]
        assert kinds == ["text/plain", "text/html"]
        assert message["List-Unsubscribe"].strip().startswith("<http://127.0.0.1:8080/unsubscribe/")
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert message["Reply-To"].startswith(f"reply+{published.update.id}.")
        assert message["Reply-To"].endswith("@reply.shop.example")
        assert message["Auto-Submitted"] is None
        assert message["Message-ID"].endswith("@shop.example>")
        # The per-recipient link replaced the placeholder in both parts.
        for part in message.iter_parts():
            content = part.get_content()
            assert "__UNSUBSCRIBE_URL__" not in content
            assert "/unsubscribe/" in content


async def test_component_filters_and_inactive_subscriptions_are_respected(
    database_url: str, sessions: SessionFactory, smtp: SmtpPeer
) -> None:
    from broadcaster.delivery.subscribers import NewSubscriber

    settings = live_settings(database_url, smtp, None)
    await subscribe(
        sessions,
        settings,
        [
            NewSubscriber(email="checkout@example.com", components=("checkout",), line=2),
            NewSubscriber(email="tracking@example.com", components=("order-tracking",), line=3),
            NewSubscriber(email="all@example.com", line=4),
        ],
    )
    published = await open_(sessions, settings, draft("investigating", FR_OPEN, EN_OPEN))
    await deliver(sessions, settings, published)
    received = sorted(r for _s, rcpts, _m in smtp.messages for r in rcpts)
    assert received == ["all@example.com", "checkout@example.com"]
