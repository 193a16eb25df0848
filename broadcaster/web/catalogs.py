"""The staff pages' words in the reader's language: Babel message catalogs (`web/locale/<lang>/
LC_MESSAGES/console.po`, the English text as the message id), compiled when first read.

    _ = gettext_for("fr")
    _("Sign in")  → "Connexion"
"""

from __future__ import annotations

import functools
import io
from collections.abc import Callable
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations

__all__ = ["DOMAIN", "LANGUAGES", "LOCALE_DIR", "catalog_path", "gettext_for", "staff_language"]

LOCALE_DIR = Path(__file__).parent / "locale"
DOMAIN = "console"
LANGUAGES = ("fr", "en")  # English is the message ids themselves


def staff_language(locale: str) -> str:
    """fr for any French locale, else en: the staff pages speak these two."""
    return "fr" if locale.lower().startswith("fr") else "en"


def catalog_path(language: str) -> Path:
    return LOCALE_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.po"


@functools.cache
def _translations(language: str) -> NullTranslations:
    path = catalog_path(language)
    if not path.exists():
        return NullTranslations()
    with path.open("rb") as source:
        catalog = read_po(source, locale=language, domain=DOMAIN)
    compiled = io.BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    return Translations(fp=compiled, domain=DOMAIN)


def gettext_for(locale: str) -> Callable[[str], str]:
    return _translations(staff_language(locale)).gettext
