"""A crisis from the browser alone: an editor signs in with a TOTP code, writes the incident in French
and English while the previews follow, sees the blame finding come and go, confirms the audience,
publishes, and watches the bars reach 100 % while the SMTP and Bot API peers receive every message.
An agent cannot open the composer. At desktop and at phone width."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta

import pyotp
import pytest
from playwright.async_api import Browser, Page, expect

from broadcaster.auth.second_factor import begin_enrolment, confirm_enrolment
from broadcaster.auth.users import add_user, use_setup_link
from broadcaster.config import Settings
from broadcaster.db import SessionFactory
from broadcaster.models import utcnow
from tests.browser.conftest import VIEWPORTS, Outside, new_page, serving, shot
from tests.conftest import make_settings
from tests.e2e.helpers import TOKEN, people, subscribe
from tests.peers.http_server import ServerThread
from tests.peers.smtp import SmtpPeer
from tests.peers.telegram import TelegramPeer

PASSWORD = "une phrase de passe assez longue"
BLAME = "Le paiement par carte échoue. Vérifiez votre connexion avant de réessayer."
FIXED = "Le paiement par carte échoue pour une partie d'entre vous. Nous sommes désolés, nous enquêtons."
ENGLISH = "Card payment fails for some of you. We are sorry and we are investigating."


@pytest.fixture
def settings(database_url: str, smtp: SmtpPeer, telegram: TelegramPeer, port: int) -> Settings:
    channels = {
        "email": {"host": smtp.host, "port": smtp.port, "security": "none"},
        "telegram": {
            "token": TOKEN, "base_url": telegram.base_url, "rate_per_second": 0,
            "per_chat_interval_seconds": 0, "channel_id": "@shop_status",
        },
    }  # fmt: skip
    return make_settings(
        database_url, channels=channels, server={"public_base_url": f"http://127.0.0.1:{port}"}
    )


@pytest.fixture
def server(settings: Settings, port: int) -> Iterator[ServerThread]:
    with serving(settings, port, dispatch=True) as thread:
        yield thread


async def staff_member(sessions: SessionFactory, email: str, role: str) -> pyotp.TOTP:
    added = await add_user(sessions, email, role.title(), role, "fr")
    await use_setup_link(sessions, added.setup_secret, PASSWORD, utcnow())
    assert added.user.id is not None
    enrolment = await begin_enrolment(sessions, added.user.id, "Maison Exemple")
    totp = pyotp.TOTP(enrolment.secret)
    await confirm_enrolment(sessions, added.user.id, totp.now(), utcnow())
    return totp


async def sign_in(page: Page, origin: str, email: str, totp: pyotp.TOTP, target: str = "/console") -> None:
    await page.goto(f"{origin}{target}")
    await expect(page).to_have_url(re.compile(r"/login\?next="))
    await page.get_by_label("Adresse e-mail").fill(email)
    await page.get_by_label("Mot de passe", exact=True).fill(PASSWORD)
    await page.get_by_label("Code de l’application").fill(
        totp.at(utcnow() + timedelta(seconds=30))
    )  # the next code
    await page.get_by_role("button", name="Connexion").click()


@pytest.mark.parametrize("viewport", list(VIEWPORTS))
async def test_an_editor_runs_the_first_update_from_the_browser(
    browser: Browser, server: ServerThread, settings: Settings, sessions: SessionFactory,
    smtp: SmtpPeer, telegram: TelegramPeer, viewport: str,
) -> None:  # fmt: skip
    await subscribe(sessions, settings, people(12))  # 6 addresses, 6 chats
    editor = await staff_member(sessions, "editor@shop.example", "editor")
    agent = await staff_member(sessions, "agent@shop.example", "agent")
    outside = Outside()
    page = await new_page(browser, viewport, outside)

    await sign_in(page, server.origin, "editor@shop.example", editor)
    await expect(page.get_by_role("heading", name="Vue d’ensemble")).to_be_visible()
    await shot(page, f"console-overview-empty-{viewport}")
    await page.get_by_role("link", name="Nouvel incident").click()
    await page.get_by_label("Titre public (fr)").fill("Paiement indisponible")
    await page.get_by_label("Titre public (en)").fill("Payment unavailable")
    await page.get_by_label("payment").check()
    await page.get_by_label("Message (fr)").fill(BLAME)

    finding = page.locator("#findings li.error", has_text="votre connexion")
    await expect(finding).to_be_visible()  # the linter read what was typed, live
    await expect(page.locator("#previews article.preview").first).to_be_visible()
    await expect(page.locator('#previews article[data-channel="email"]').first).to_contain_text(
        "Vérifiez votre connexion"
    )
    await shot(page, f"console-composer-blame-{viewport}")
    await page.get_by_label("Message (fr)").fill(FIXED)
    await expect(finding).to_have_count(0)
    await page.get_by_label("Message (en)").fill(ENGLISH)
    english = page.locator('#previews article[data-channel="email"]', has_text="We are sorry")
    await expect(english).to_be_visible()
    await page.get_by_role("button", name="Prévisualiser et voir qui le reçoit").click()

    confirm = page.locator("section.confirm")
    await expect(confirm).to_contain_text("6 email")
    await expect(confirm).to_contain_text("7 telegram")  # 6 chats and the channel
    await shot(page, f"console-confirm-{viewport}")
    await page.get_by_role("button", name="Confirmer et publier").click()

    await expect(page).to_have_url(re.compile(r"/console/incidents/\d+$"))
    await expect(page.locator('tr[data-channel="email"] .count')).to_have_text("6 / 6", timeout=30_000)
    await expect(page.locator('tr[data-channel="telegram"] .count')).to_have_text("7 / 7", timeout=30_000)
    await shot(page, f"console-incident-{viewport}")
    assert len(smtp.messages) == 6 and len(telegram.texts("@shop_status")) == 1

    await page.get_by_label("Message (fr)").fill(
        "Le paiement fonctionne de nouveau. Merci de votre patience."
    )
    await page.get_by_label("Message (en)").fill("Payment works again. Thank you for your patience.")
    await page.get_by_label("Geste commercial, à la résolution").fill("10 % sur votre prochaine commande")
    await page.get_by_role("button", name="Résoudre").click()
    await expect(page.locator("p.meta").first).to_contain_text("Résolu")
    await expect(page.locator('tr[data-channel="email"] .count')).to_have_text("12 / 12", timeout=30_000)
    assert any("10 % sur votre prochaine commande" in str(m) for *_, m in smtp.messages[6:])
    await expect(page.locator("section.follow-up")).to_have_count(0)  # nothing left to post

    other = await new_page(browser, viewport, outside)
    await sign_in(other, server.origin, "agent@shop.example", agent, "/console/incidents/new")
    await expect(other.get_by_role("heading", name="Pas pour votre rôle")).to_be_visible()
    await shot(other, f"console-forbidden-{viewport}")
    assert outside.requests == []
