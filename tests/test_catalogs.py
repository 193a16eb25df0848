"""The staff pages' words come from Babel catalogs: every message the templates and page code ask for
has its French, and a French reader gets French pages."""

from __future__ import annotations

from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po
from fastapi import FastAPI

from broadcaster.auth.sign_in import LOCKED, REFUSED, SignInRefused
from broadcaster.db import SessionFactory
from broadcaster.web.catalogs import catalog_path, gettext_for
from broadcaster.web.staff_gate import StaffGate
from broadcaster.web.staff_pages import staff_pages_router
from tests.conftest import make_settings
from tests.served import served

WEB = Path(__file__).resolve().parent.parent / "broadcaster" / "web"
METHODS = [
    ("templates/staff/**.j2", "jinja2.ext:babel_extract"),
    ("templates/console/**.j2", "jinja2.ext:babel_extract"),
    ("staff_*.py", "python"),
    ("console/**.py", "python"),
]


def asked_for() -> set[str]:
    found = {message for _file, _line, message, _comments, _context in extract_from_dir(str(WEB), METHODS)}
    return {m for m in found if isinstance(m, str)} | {REFUSED, LOCKED}


def test_every_message_asked_for_has_its_french() -> None:
    with catalog_path("fr").open("rb") as source:
        catalog = read_po(source, locale="fr")
    asked = asked_for()
    assert len(asked) > 25 and "Sign in" in asked
    missing = sorted(m for m in asked if not (catalog.get(m) and catalog.get(m).string))
    assert missing == []
    unused = sorted(m.id for m in catalog if m.id and m.id not in asked)
    assert unused == []  # a word nobody asks for is dead


def test_messages_read_in_the_readers_language() -> None:
    assert gettext_for("fr_CA")("Sign in") == "Connexion"
    assert gettext_for("en_GB")("Sign in") == "Sign in"
    assert gettext_for("de")("Sign in") == "Sign in"  # the staff pages speak French and English
    assert (
        SignInRefused(15).said_with(gettext_for("fr")) == "trop d’essais manqués : réessayez dans 15 minutes"
    )


async def test_a_french_browser_gets_the_sign_in_page_in_french(
    database_url: str, sessions: SessionFactory
) -> None:
    settings = make_settings(database_url)
    app = FastAPI()
    app.include_router(staff_pages_router(settings, sessions, StaffGate(settings, sessions)))
    async with served(app) as client:
        french = await client.get("/login", headers={"Accept-Language": "fr-FR,fr;q=0.9"})
        english = await client.get("/login", headers={"Accept-Language": "en-GB"})
    assert "<h1>Connexion</h1>" in french.text and 'lang="fr"' in french.text
    assert "<h1>Sign in</h1>" in english.text and 'lang="en"' in english.text
