"""The inbox in a real browser: a customer's Telegram message posted to the webhook appears in the
agent's open inbox without a reload; the agent answers with the ETA canned reply, and the Bot API peer
receives it as a reply in the customer's own thread. A viewer reads no customer's message."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator

import httpx
import pytest
from playwright.async_api import Browser, expect

from broadcaster.config import Settings
from broadcaster.db import SessionFactory
from tests.browser.conftest import VIEWPORTS, Outside, new_page, serving, shot
from tests.browser.test_console_crisis import sign_in, staff_member
from tests.conftest import make_settings
from tests.e2e.helpers import TOKEN, draft, open_
from tests.e2e.test_inbox_answers import webhook_update
from tests.peers.http_server import ServerThread
from tests.peers.telegram import TelegramPeer

SECRET = "telegram-webhook-secret-0123456789abcdef"
CHAT = 5151


@pytest.fixture
def settings(database_url: str, telegram: TelegramPeer, port: int) -> Settings:
    channels = {"telegram": {
        "token": TOKEN, "base_url": telegram.base_url, "webhook_secret": SECRET,
        "rate_per_second": 0, "per_chat_interval_seconds": 0,
    }}  # fmt: skip
    return make_settings(
        database_url, channels=channels, server={"public_base_url": f"http://127.0.0.1:{port}"}
    )


@pytest.fixture
def server(settings: Settings, port: int) -> Iterator[ServerThread]:
    with serving(settings, port, dispatch=True) as thread:
        yield thread


@pytest.mark.parametrize("viewport", list(VIEWPORTS))
async def test_a_customers_message_arrives_live_and_the_agent_answers_in_their_thread(
    browser: Browser, server: ServerThread, settings: Settings, sessions: SessionFactory,
    telegram: TelegramPeer, viewport: str,
) -> None:  # fmt: skip
    outage = draft("investigating", "Le paiement échoue, désolés.", "Payment fails, sorry.")
    await open_(sessions, settings, outage, force=True)
    agent = await staff_member(sessions, "agent@shop.example", "agent")
    outside = Outside()
    page = await new_page(browser, viewport, outside)
    await sign_in(page, server.origin, "agent@shop.example", agent, "/console/inbox")
    await expect(page.get_by_role("heading", name="Boîte de réception")).to_be_visible()
    await expect(page.locator("#conversations li.empty")).to_be_visible()

    asked = telegram.add_customer_message(CHAT)
    update = webhook_update(1, CHAT, asked, "ma commande 4521 n'est pas arrivée, vous pouvez m'aider ?", "fr")
    hook = {"X-Telegram-Bot-Api-Secret-Token": SECRET, "Content-Type": "application/json"}
    async with httpx.AsyncClient(base_url=server.origin) as customer_side:
        assert (
            await customer_side.post("/webhooks/telegram", content=update, headers=hook)
        ).status_code == 200

    row = page.locator("#conversations li a", has_text="ma commande 4521")
    await expect(row).to_be_visible(timeout=20_000)  # no reload: the event stream brought it
    await shot(page, f"console-inbox-{viewport}")
    await row.click()
    await expect(page).to_have_url(re.compile(r"/console/inbox/\d+$"))
    eta = page.locator("ul.canned li", has_text="« eta »")
    await expect(eta.locator(".preview-text")).not_to_be_empty()
    await shot(page, f"console-conversation-{viewport}")
    sent_before = len(telegram.texts(CHAT))
    total_before = len(telegram.messages)
    await eta.get_by_role("button").click()
    await expect(page).to_have_url(re.compile(r"/console/inbox/\d+$"))
    assert await asyncio.to_thread(telegram.wait_for, total_before + 1, 10.0)  # the peer got the answer
    (reply,) = [m for m in telegram.messages if m["chat_id"] == str(CHAT)][sent_before:]
    assert reply["reply_to_message_id"] == asked  # in the customer's own thread
    assert outside.requests == []


async def test_a_viewer_reads_incidents_and_changes_nothing(
    browser: Browser, server: ServerThread, settings: Settings, sessions: SessionFactory
) -> None:
    published = await open_(
        sessions, settings, draft("investigating", "Le paiement échoue, désolés.", "Payment fails.")
    )
    viewer = await staff_member(sessions, "viewer@shop.example", "viewer")
    page = await new_page(browser, "desktop", Outside())
    await sign_in(page, server.origin, "viewer@shop.example", viewer, "/console/inbox")
    await expect(page.get_by_role("heading", name="Pas pour votre rôle")).to_be_visible()
    await page.goto(f"{server.origin}/console/incidents/{published.incident.id}")
    await expect(page.get_by_role("heading", name=re.compile("Paiement"))).to_be_visible()
    await expect(page.locator("section.follow-up")).to_have_count(0)  # no form to change it
    await expect(page.get_by_role("link", name="Nouvel incident")).to_have_count(0)
    refused = await page.request.post(
        f"{server.origin}/console/incidents/{published.incident.id}", form={"step": "update"}
    )
    assert refused.status == 403
