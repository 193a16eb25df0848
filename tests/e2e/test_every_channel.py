"""One `incident open` with every channel configured: each local peer receives exactly the rendering.

X (HTTPS, OAuth 1.0a), the Graph API, FCM with its OAuth token endpoint, a Web Push service that
decrypts the payload, WordPress, SMTP and the Bot API all get the message compose rendered for them
(what `broadcaster preview` shows, and what the golden files pin for a fixed context).
"""

from __future__ import annotations

import json
from contextlib import ExitStack
from pathlib import Path

import pytest
from sqlmodel import select

from broadcaster.db import SessionFactory
from broadcaster.delivery.subscribers import NewSubscriber
from broadcaster.message import RenderedMessage
from broadcaster.models import Delivery, Rendition
from channels.push.webpush import generate_vapid_key
from tests.conftest import make_settings
from tests.e2e.helpers import TOKEN, deliver, draft, open_, subscribe
from tests.peers.fcm import FcmPeer
from tests.peers.graph_api import GraphApiPeer
from tests.peers.smtp import SmtpPeer
from tests.peers.telegram import TelegramPeer
from tests.peers.webpush import WebPushEndpoint
from tests.peers.wordpress import WordPressPeer
from tests.peers.x_api import XApiPeer

pytestmark = pytest.mark.slow
FR = "Le paiement par carte échoue pour une partie d'entre vous. Nous sommes désolés et nous enquêtons."
DEVICE = "dK3v9F0xQ6aA:APA91bHPRgkF3J8n2-device-token-for-tests"
EN = "Card payment fails for some of you. We are sorry and we are investigating."


async def renditions(sessions: SessionFactory) -> dict[tuple[str, str], RenderedMessage]:
    async with sessions() as session:
        rows = await session.exec(select(Rendition))
        return {(r.channel, r.locale): RenderedMessage.from_json(r.payload) for r in rows}


async def test_one_incident_reaches_every_channel_exactly_as_rendered(
    database_url: str, sessions: SessionFactory, tmp_path: Path
) -> None:
    with ExitStack() as stack:
        smtp = stack.enter_context(SmtpPeer())
        telegram = stack.enter_context(TelegramPeer())
        x_api = stack.enter_context(XApiPeer())
        graph = stack.enter_context(GraphApiPeer())
        fcm = stack.enter_context(FcmPeer())
        browsers = stack.enter_context(WebPushEndpoint())
        wordpress = stack.enter_context(WordPressPeer())
        vapid_file = tmp_path / "vapid.pem"
        browser_key = generate_vapid_key(vapid_file)
        settings = make_settings(database_url, channels={
            "email": {"host": smtp.host, "port": smtp.port, "security": "none"},
            "telegram": {"token": TOKEN, "base_url": telegram.base_url, "channel_id": "@shop_status",
                         "rate_per_second": 0, "per_chat_interval_seconds": 0},
            "twitter": {**x_api.credentials, "api_base_url": x_api.base_url, "ca_file": x_api.ca_file},
            "facebook": {"page_id": graph.page_id, "page_access_token": "PAGE-TOKEN",
                         "graph_base_url": graph.base_url},
            "push": {"service_account_file": str(fcm.service_account(tmp_path)), "fcm_base_url": fcm.base_url,
                     "vapid_private_key_file": str(vapid_file), **browsers.settings},
            "blog": {"publisher": "wordpress", "wordpress_url": wordpress.base_url,
                     "wordpress_user": wordpress.user, "wordpress_app_password": wordpress.app_password},
        })  # fmt: skip
        subscription = browsers.subscribe(application_server_key=browser_key)
        await subscribe(sessions, settings, [
            NewSubscriber(email="client@example.com", locale="fr", line=2),
            NewSubscriber(telegram_chat_id="4242", locale="en", line=3),
            NewSubscriber(push="fcm:" + DEVICE, locale="fr", line=4),
            NewSubscriber(push="webpush:" + json.dumps(subscription), locale="en", line=5),
        ])  # fmt: skip
        published = await open_(sessions, settings, draft("investigating", FR, EN))
        counts = await deliver(sessions, settings, published)
        async with sessions() as session:
            unsent = [
                (d.target[:60], d.last_error)
                for d in await session.exec(select(Delivery))
                if d.status != "sent"
            ]
        assert unsent == [], counts
        rendered = await renditions(sessions)

        # X: the French thread, chained.
        thread = rendered[("twitter", "fr")]
        assert [t["text"] for t in x_api.tweets] == list(thread.parts)
        assert [t["in_reply_to"] for t in x_api.tweets][1:] == [t["id"] for t in x_api.tweets][:-1]
        # Facebook: one page post.
        assert [p["message"] for p in graph.posts] == [rendered[("facebook", "fr")].text]
        # Telegram: the public channel in French, the English subscriber in English.
        assert telegram.texts("@shop_status") == list(rendered[("telegram", "fr")].parts)
        assert telegram.texts("4242") == list(rendered[("telegram", "en")].parts)
        # E-mail: the French subject and text (with the recipient's own unsubscribe link).
        ((_sender, rcpts, email),) = smtp.messages
        assert rcpts == ["client@example.com"]
        assert email["Subject"] == rendered[("email", "fr")].title
        text = email.get_body(("plain",)).get_content().replace("\r\n", "\n")
        assert rendered[("email", "fr")].text.split("__UNSUBSCRIBE_URL__")[0].strip() in text
        # App push: the topic for all app users, and the device in French.
        notifications = [
            (m["message"].get("topic") or m["message"].get("token"), m["message"]["notification"])
            for m in fcm.messages
        ]
        push_fr = rendered[("push", "fr")]
        assert sorted(notifications, key=lambda n: n[0]) == [
            ("all", {"title": push_fr.title, "body": push_fr.parts[0]}),
            (DEVICE, {"title": push_fr.title, "body": push_fr.parts[0]}),
        ]
        # Web Push: the browser decrypts the English notification.
        (record,) = browsers.records
        push_en = rendered[("push", "en")]
        assert (record.payload["title"], record.payload["body"]) == (push_en.title, push_en.parts[0])
        assert record.urgency == "high" and record.vapid_key == browser_key
        # WordPress: one post with the French blog rendition.
        (post,) = wordpress.posts.values()
        assert post["title"] == rendered[("blog", "fr")].title
        assert "Le paiement par carte échoue" in post["content"]
