"""A new admin's first sign-in in a real browser, at desktop and at phone width: the set-up link,
the password, the authenticator's QR code, a TOTP code computed by pyotp, the recovery codes."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pyotp
import pytest
from playwright.async_api import Browser, expect

from broadcaster.auth.users import add_user
from broadcaster.config import Settings
from broadcaster.db import SessionFactory
from tests.browser.conftest import VIEWPORTS, Outside, new_page, serving, shot
from tests.conftest import make_settings
from tests.peers.http_server import ServerThread

PASSWORD = "une phrase de passe assez longue"


@pytest.fixture
def settings(database_url: str, port: int) -> Settings:
    return make_settings(database_url, server={"public_base_url": f"http://127.0.0.1:{port}"})


@pytest.fixture
def server(settings: Settings, port: int) -> Iterator[ServerThread]:
    with serving(settings, port, dispatch=False) as thread:
        yield thread


@pytest.mark.parametrize("viewport", list(VIEWPORTS))
async def test_a_new_admin_sets_a_password_and_an_authenticator_then_signs_in(
    browser: Browser, server: ServerThread, sessions: SessionFactory, viewport: str
) -> None:
    email = f"admin-{viewport}@shop.example"
    added = await add_user(sessions, email, "Camille", "admin", "fr")
    outside = Outside()
    page = await new_page(browser, viewport, outside)

    await page.goto(f"{server.origin}/setup/{added.setup_secret}")
    await expect(page.get_by_role("heading", name="Choisir votre mot de passe")).to_be_visible()
    await shot(page, f"setup-{viewport}")
    await page.get_by_label("Nouveau mot de passe").fill(PASSWORD)
    await page.get_by_label("Le même, encore une fois").fill(PASSWORD)
    await page.get_by_role("button", name="Enregistrer").click()

    await expect(page.get_by_role("status")).to_have_text("Mot de passe enregistré : connectez-vous.")
    await shot(page, f"login-{viewport}")
    await page.get_by_label("Adresse e-mail").fill(email)
    await page.get_by_label("Mot de passe", exact=True).fill(PASSWORD)
    await page.get_by_role("button", name="Connexion").click()

    await expect(page).to_have_url(re.compile(r"/account/2fa$"))
    await expect(page.get_by_role("status")).to_contain_text("exige la double authentification")
    qr = page.locator("figure.qr svg")
    await expect(qr).to_be_visible()
    box = await qr.bounding_box()
    assert box is not None and box["width"] <= VIEWPORTS[viewport]["width"]  # the QR code fits a phone
    await shot(page, f"enrol-{viewport}")
    key = await page.locator("p code").first.inner_text()
    await page.get_by_label("Code affiché par l’application").fill(pyotp.TOTP(key).now())
    await page.get_by_role("button", name="Activer").click()

    await expect(page.get_by_role("heading", name="Vos codes de secours")).to_be_visible()
    codes = await page.locator("ul.codes code").all_inner_texts()
    assert len(codes) == 10 and all(re.fullmatch(r"[a-z0-9]{5}-[a-z0-9]{5}", c) for c in codes)
    await shot(page, f"recovery-codes-{viewport}")
    await page.get_by_role("link", name="Votre compte").click()
    await expect(page.locator("dd").filter(has_text="activée")).to_be_visible()
    await shot(page, f"account-{viewport}")

    await page.get_by_role("button", name="Se déconnecter", exact=True).click()
    await expect(page).to_have_url(re.compile(r"/login$"))
    await page.get_by_label("Adresse e-mail").fill(email)
    await page.get_by_label("Mot de passe", exact=True).fill(PASSWORD)
    await page.get_by_label("Code de l’application").fill(codes[0])  # the phone is lost: a recovery code
    await page.get_by_role("button", name="Connexion").click()
    await expect(page).to_have_url(re.compile(r"/console$"))
    assert outside.requests == []  # nothing loaded from anywhere but 127.0.0.1
