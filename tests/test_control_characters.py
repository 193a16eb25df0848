"""A control character pasted into an update is refused at publication, naming the option and where.

A BEL (U+0007) or an ANSI escape copied from a terminal once made `/feed.atom` answer 500 for the
whole history window (lxml refuses XML-incompatible strings; see test_public_pages), and a newline
in a title breaks an e-mail Subject. Rows stored before are rendered without them.
"""

from __future__ import annotations

import re

import pytest
from sqlmodel import select

from broadcaster.compose.render import Composer
from broadcaster.control_characters import control_character, without_controls
from broadcaster.db import SessionFactory
from broadcaster.models import Incident
from broadcaster.publishing.drafting import PublishError, UpdateDraft
from tests.conftest import make_settings
from tests.e2e.helpers import draft, open_
from tests.test_compose import make_context

ATOM = "{http://www.w3.org/2005/Atom}"
FR = "Le paiement échoue pour une partie d'entre vous. Désolés, nous enquêtons."
EN = "Payment fails for some of you. Sorry, we are investigating."


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"message": "Le paiement\x07 échoue."}, "--message: control character U+0007 at position 12"),
        ({"translations": {"en": "Pay\x1b[31m"}}, "--translation en: control character U+001B at position 4"),
        ({"alternative": "Appelez\x00 le 01"}, "--alternative: control character U+0000 at position 8"),
        ({"compensation": "Livraison\x85 ok"}, "--compensation: control character U+0085 at position 10"),
    ],
    ids=["message", "translation", "alternative", "compensation-c1"],
)
async def test_publication_refuses_a_control_character_naming_the_option(
    database_url: str, sessions: SessionFactory, changes: dict[str, object], expected: str
) -> None:
    settings = make_settings(database_url)
    fields: dict[str, object] = {"status": "investigating", "message": FR, "translations": {"en": EN}}
    with pytest.raises(PublishError) as caught:
        await open_(sessions, settings, UpdateDraft(**{**fields, **changes}), force=True)  # type: ignore[arg-type]
    assert str(caught.value) == expected
    async with sessions() as session:
        assert list(await session.exec(select(Incident))) == []  # nothing half-written


@pytest.mark.parametrize(
    ("title", "translations", "expected"),
    [
        ("Paiement\x07 indisponible", {}, "--title: control character U+0007 at position 9"),
        ("Paiement\nindisponible", {}, "--title: control character U+000A at position 9"),
        (
            "Paiement",
            {"en": "Payment\tdown"},
            "--title-translation en: control character U+0009 at position 8",
        ),
    ],
    ids=["bel", "newline", "translated-tab"],
)
async def test_a_title_is_one_line_without_control_characters(
    database_url: str, sessions: SessionFactory, title: str, translations: dict[str, str], expected: str
) -> None:
    settings = make_settings(database_url)
    with pytest.raises(PublishError, match=f"^{re.escape(expected)}$"):
        await open_(
            sessions, settings, draft("investigating", FR, EN), title=title, title_translations=translations
        )


def test_tabs_and_line_breaks_stay_in_a_message() -> None:
    assert control_character("Étapes :\n\t1. vider le panier\r\n\t2. réessayer") == ""
    assert without_controls("a\x07b\x00c\ufffe\n\td") == "abc\n\td"


@pytest.mark.parametrize("channel", ["email", "push", "blog", "telegram", "twitter", "facebook"])
def test_the_composer_drops_control_characters_of_stored_texts(channel: str) -> None:
    stored = make_context(title="Paiement\x07 indisponible\x1b", message="Désolés\x00, on enquête.\x7f")
    message = Composer().render(channel, stored)
    for text in (message.title, message.html, *message.parts):
        assert control_character(text) == "", (channel, text)
