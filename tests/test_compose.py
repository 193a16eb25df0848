"""Compose: every channel × locale × kind against golden files, plus escaping and fallbacks.

Regenerate the golden files after a deliberate wording change with
``UPDATE_GOLDEN=1 .venv/bin/pytest tests/test_compose.py`` and read the diff: they are the product.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from broadcaster.compose.render import Composer, TemplateError, format_when, status_words
from broadcaster.message import UNSUBSCRIBE_PLACEHOLDER, Brand, MessageContext, RenderedMessage
from channels.limits import split_text, split_x_thread, visible_length, x_weighted_length
from channels.registry import CAPABILITIES, CHANNEL_NAMES

GOLDEN = Path(__file__).parent / "golden"
BRAND = Brand(
    name="Maison Exemple",
    public_url="https://maison-exemple.fr",
    status_url="https://status.maison-exemple.fr",
    timezone="Europe/Paris",
)
# 12 Nov 2026: Paris is UTC+1, so 13:30 UTC reads "14 h 30" / "2:30 PM".
PUBLISHED_AT = datetime(2026, 11, 12, 12, 5, tzinfo=UTC)

TEXTS = {
    "fr": {
        "title": "Paiement indisponible",
        "components": ("Commande", "Paiement"),
        "update": (
            "Depuis 13 h, le paiement par carte échoue pour une partie d'entre vous au moment de valider "
            "la commande. Votre panier est bien conservé : rien n'est perdu. Notre prestataire de "
            "paiement a trouvé l'origine du problème et un correctif est en cours. Toutes nos excuses "
            "pour ce contretemps."
        ),
        "resolved": (
            "Depuis 14 h 20, le paiement par carte fonctionne de nouveau. Si votre commande a échoué "
            "cet après-midi, aucun montant n'a été débité : vous pouvez la repasser dès maintenant."
        ),
        "alternative": "Commandes par téléphone au 01 23 45 67 89, de 9 h à 19 h",
        "compensation": "la livraison est offerte sur votre prochaine commande avec le code MERCI, "
        "jusqu'au 30 novembre",
    },
    "en": {
        "title": "Payment unavailable",
        "components": ("Checkout", "Payment"),
        "update": (
            "Since 1 PM, card payments have been failing for some of you when placing an order. Your "
            "basket is saved: nothing is lost. Our payment provider has found the cause and a fix is "
            "on its way. We're sorry for the trouble."
        ),
        "resolved": (
            "Card payments have been working again since 2:20 PM. If your order failed this afternoon, "
            "you were not charged: you can place it again right now."
        ),
        "alternative": "Order by phone on 01 23 45 67 89, 9 AM to 7 PM",
        "compensation": "free delivery on your next order with the code THANKYOU, until 30 November",
    },
}


def nbsp(text: str) -> str:
    """A clock as messages write it: no-break spaces inside ("14 h 30", "2:30 PM")."""
    return text.replace(" ", "\u00a0")


def make_context(locale: str = "fr", kind: str = "update", **changes: object) -> MessageContext:
    """The fixed incident: payment down, cause identified, ETA 14 h 30, next update 15 h 00."""
    texts = TEXTS[locale.split("_")[0]]
    update = kind == "update"
    context = MessageContext(
        brand=BRAND,
        locale=locale,
        kind="update" if update else "resolved",
        incident_id=42,
        title=str(texts["title"]),
        impact="major",
        status="identified" if update else "resolved",
        message=str(texts[kind]),
        published_at=PUBLISHED_AT if update else datetime(2026, 11, 12, 13, 25, tzinfo=UTC),
        components=tuple(texts["components"]),
        eta_at=datetime(2026, 11, 12, 13, 30, tzinfo=UTC) if update else None,
        next_update_at=datetime(2026, 11, 12, 14, 0, tzinfo=UTC) if update else None,
        alternative=str(texts["alternative"]) if update else None,
        compensation=None if update else str(texts["compensation"]),
        is_first_update=update,
        incident_url="https://status.maison-exemple.fr/incidents/42",
    )
    return dataclasses.replace(context, **changes)  # type: ignore[arg-type]


def dump(message: RenderedMessage) -> str:
    """A readable dump of a rendered message, the format of the golden files."""
    lines = [f"channel: {message.channel}", f"locale: {message.locale}", f"kind: {message.kind}"]
    if message.title:
        lines.append(f"title: {message.title}")
    for index, part in enumerate(message.parts, start=1):
        lines += [f"----- part {index} -----", part]
    if message.html:
        lines += ["----- html -----", message.html]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def composer() -> Composer:
    return Composer()


@pytest.mark.parametrize("kind", ["update", "resolved"])
@pytest.mark.parametrize("locale", ["fr", "en"])
@pytest.mark.parametrize("channel", CHANNEL_NAMES)
def test_golden(composer: Composer, channel: str, locale: str, kind: str) -> None:
    actual = dump(composer.render(channel, make_context(locale, kind)))
    path = GOLDEN / channel / locale / f"{kind}.txt"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual, encoding="utf-8")
    expected = path.read_text(encoding="utf-8") if path.exists() else ""
    if actual != expected:
        diff = "".join(
            difflib.unified_diff(
                expected.splitlines(keepends=True), actual.splitlines(keepends=True), str(path), "rendered"
            )
        )
        pytest.fail(f"{path} differs (UPDATE_GOLDEN=1 regenerates it):\n{diff}")


def all_text(message: RenderedMessage) -> str:
    return "\n".join([message.title, *message.parts, message.html])


def test_render_all_covers_every_channel_within_limits(composer: Composer) -> None:
    long_message = " ".join(["Le paiement par carte échoue encore pour une partie d'entre vous."] * 120)
    # No ETA and no alternative: the push body then carries the CM's text, cut at a word.
    messages = composer.render_all(make_context("fr", message=long_message, eta_at=None, alternative=None))
    assert tuple(messages) == CHANNEL_NAMES
    assert all(x_weighted_length(part) <= 280 for part in messages["twitter"].parts)
    assert len(messages["twitter"].parts) > 1
    assert len(messages["telegram"].parts) > 1
    assert all(visible_length(part) <= 4096 for part in messages["telegram"].parts)
    assert len(messages["push"].title) <= CAPABILITIES["push"].max_title
    assert len(messages["push"].parts[0]) <= CAPABILITIES["push"].max_body
    assert messages["push"].parts[0].endswith("…")
    assert len(messages["email"].title) <= 78 and "\n" not in messages["email"].title


def test_missing_variable_raises_naming_the_template(tmp_path: Path) -> None:
    folder = tmp_path / "twitter" / "fr"
    folder.mkdir(parents=True)
    (folder / "update.body.j2").write_text("{{ message }} {{ coupon_code }}\n", encoding="utf-8")
    with pytest.raises(TemplateError, match="coupon_code") as info:
        Composer(tmp_path).render("twitter", make_context("fr"))
    assert info.value.template_name == "twitter/fr/update.body.j2"


def test_printing_none_raises_instead_of_showing_none(tmp_path: Path) -> None:
    folder = tmp_path / "push" / "en"
    folder.mkdir(parents=True)
    (folder / "update.body.j2").write_text("Back {{ eta_at }}\n", encoding="utf-8")
    with pytest.raises(TemplateError, match="None"):
        Composer(tmp_path).render("push", make_context("en", eta_at=None))


def test_user_template_overrides_one_file_only(tmp_path: Path) -> None:
    folder = tmp_path / "push" / "fr"
    folder.mkdir(parents=True)
    (folder / "update.title.j2").write_text("{{ brand.name }} : on s'en occupe\n", encoding="utf-8")
    message = Composer(tmp_path).render("push", make_context("fr"))
    assert message.title == "Maison Exemple : on s'en occupe"
    assert message.parts == Composer().render("push", make_context("fr")).parts


def test_regional_locale_falls_back_to_language(composer: Composer) -> None:
    regional = composer.render_all(make_context("fr_CA"))
    plain = composer.render_all(make_context("fr"))
    for channel in CHANNEL_NAMES:
        assert regional[channel].locale == "fr_CA"
        assert regional[channel].parts == plain[channel].parts
    assert Composer(default_locale="en").locale_chain("de-AT") == ["de_AT", "de", "en"]


def test_unknown_locale_falls_back_to_default(composer: Composer) -> None:
    message = composer.render("telegram", dataclasses.replace(make_context("fr"), locale="de"))
    assert "Retour estimé" in message.text and f"vers {nbsp('14 h 30')}" in message.text


def test_english_times_and_french_times(composer: Composer) -> None:
    english = composer.render("facebook", make_context("en")).text
    assert f"around {nbsp('2:30 PM')}" in english and f"at {nbsp('3:00 PM')}" in english
    french = composer.render("facebook", make_context("fr")).text
    assert f"vers {nbsp('14 h 30')}" in french and f"à {nbsp('15 h 00')}" in french


def test_day_is_named_when_not_today(composer: Composer) -> None:
    tomorrow = datetime(2026, 11, 13, 8, 0, tzinfo=UTC)  # 9:00 in Paris
    later = datetime(2026, 11, 16, 8, 0, tzinfo=UTC)
    fr = composer.render("facebook", make_context("fr", eta_at=tomorrow, next_update_at=later)).text
    assert f"Retour estimé demain vers {nbsp('9 h 00')}." in fr
    assert f"Prochain point le 16 nov. à {nbsp('9 h 00')}" in fr
    en = composer.render("facebook", make_context("en", eta_at=tomorrow, next_update_at=later)).text
    assert f"We expect it back tomorrow around {nbsp('9:00 AM')}." in en
    assert f"Next update on Nov 16 at {nbsp('9:00 AM')}" in en


HOSTILE = 'Promo <script>alert("x")</script> & livraison'


def test_telegram_escapes_the_message(composer: Composer) -> None:
    body = composer.render("telegram", make_context("fr", message=HOSTILE)).text
    assert "<script>" not in body
    assert "&lt;script&gt;" in body and "&amp; livraison" in body


def test_email_html_and_blog_html_escape_the_message(composer: Composer) -> None:
    for channel in ("email", "blog"):
        message = composer.render(channel, make_context("en", message=HOSTILE))
        assert "<script>" not in message.html
        assert "&lt;script&gt;" in message.html and "&amp; livraison" in message.html
    assert "<script>" in composer.render("email", make_context("en", message=HOSTILE)).parts[0]


@pytest.mark.parametrize("locale", ["fr", "en"])
def test_optional_facts_absent_leave_no_trace(composer: Composer, locale: str) -> None:
    context = make_context(locale, eta_at=None, next_update_at=None, alternative=None, components=())
    absent = {
        "fr": ["Retour estimé", "Prochain point", "En attendant", "Services touchés"],
        "en": ["Expected back", "expect it back", "Next update", "In the meantime", "Affected"],
    }[locale]
    for message in composer.render_all(context).values():
        text = all_text(message)
        assert "None" not in text
        assert not [phrase for phrase in absent if phrase in text], message.channel
        assert "\n\n\n" not in text


def test_status_link_falls_back_to_status_page(composer: Composer) -> None:
    message = composer.render("twitter", make_context("fr", incident_url=""))
    assert "https://status.maison-exemple.fr" in message.text
    assert "/incidents/42" not in message.text


def test_email_keeps_unsubscribe_placeholder_for_personalisation(composer: Composer) -> None:
    message = composer.render("email", make_context("fr", kind="resolved"))
    assert UNSUBSCRIBE_PLACEHOLDER in message.parts[0] and UNSUBSCRIBE_PLACEHOLDER in message.html
    personal = message.personalise(unsubscribe_url="https://maison-exemple.fr/u/abc")
    assert "https://maison-exemple.fr/u/abc" in personal.html


def test_single_component_agrees_in_number(composer: Composer) -> None:
    fr = composer.render("facebook", make_context("fr", kind="resolved", components=("Paiement",))).text
    assert "Paiement fonctionne de nouveau" in fr
    en = composer.render("facebook", make_context("en", kind="resolved", components=("Payment",))).text
    assert "Payment is working normally again" in en


def test_status_words_refuse_unknown_status() -> None:
    assert status_words("monitoring", "fr_CA") == "Correctif en place, nous surveillons"
    with pytest.raises(ValueError, match="unknown status"):
        status_words("exploded", "fr")


def test_unknown_status_fails_before_sending(composer: Composer) -> None:
    with pytest.raises(TemplateError, match="unknown status 'exploded'"):
        composer.render_all(make_context("en", status="exploded"))


LONG_FR = (
    "Depuis 13 h, une partie d'entre vous ne peut plus payer par carte : la page de paiement reste "
    "bloquée après la saisie du code. Votre panier est conservé et aucun montant n'a été débité. "
    "Plus de détails sur https://status.maison-exemple.fr/incidents/42/details-du-paiement-par-carte "
    "et sur notre page d'aide. "
) * 4


@pytest.mark.parametrize("channel", ["twitter", "push", "blog"])
def test_golden_long_update(composer: Composer, channel: str) -> None:
    """The limits at work on a long message: X thread (URLs count 23), push cut at a word, blog whole."""
    # Without ETA nor alternative, the push body is the message itself: long enough to be cut.
    facts = {"eta_at": None, "alternative": None} if channel == "push" else {}
    rendered = composer.render(channel, make_context("fr", "update", message=LONG_FR, **facts))
    path = GOLDEN / channel / "fr" / "update-long.txt"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.write_text(dump(rendered), encoding="utf-8")
    assert dump(rendered) == path.read_text(encoding="utf-8"), (
        f"{path} differs (UPDATE_GOLDEN=1 regenerates it)"
    )


def test_facebook_truncates_a_huge_post_at_a_word(composer: Composer) -> None:
    huge = "Nous enquêtons sur la panne du paiement. " * 2000  # ~82,000 characters
    body = composer.render("facebook", make_context("fr", "update", message=huge)).parts[0]
    assert len(body) <= CAPABILITIES["facebook"].max_body
    assert body.endswith("…") and not body[:-1].endswith(" ")
    assert body[:-1].split()[-1] in huge.split()  # the last word kept is a whole word


THANKING = {
    "fr": "Le paiement fonctionne de nouveau. Merci pour votre patience.",
    "en": "Payment works again. Thank you for your patience.",
}
THANKS = re.compile(r"merci|thank", re.IGNORECASE)


@pytest.mark.parametrize("locale", ["fr", "en"])
@pytest.mark.parametrize("channel", CHANNEL_NAMES)
def test_a_resolution_that_already_thanks_is_not_thanked_twice(
    composer: Composer, channel: str, locale: str
) -> None:
    thanking = composer.render(
        channel, make_context(locale, "resolved", message=THANKING[locale], compensation=None)
    )
    plain = composer.render(channel, make_context(locale, "resolved", compensation=None))
    for message in (thanking, plain):  # the message's own thanks, or the template's: once
        for text in (message.text, message.html):
            assert not text or len(THANKS.findall(text)) == 1, text


def test_a_message_that_asks_keeps_the_closing_thanks(composer: Composer) -> None:
    asking = "Tout fonctionne de nouveau. Merci de repasser votre commande si elle a échoué."
    body = composer.render("facebook", make_context("fr", "resolved", message=asking)).text
    assert "Merci pour votre patience et pour tous vos messages pendant l'incident." in body


def test_a_time_never_breaks_in_two(composer: Composer) -> None:
    at = datetime(2026, 11, 12, 16, 11, tzinfo=UTC)  # 17:11 in Paris
    french = format_when(at, timezone="Europe/Paris", locale="fr", now=PUBLISHED_AT, prep="around")
    english = format_when(at, timezone="Europe/Paris", locale="en", now=PUBLISHED_AT, prep="at")
    assert (french, english) == (f"vers {nbsp('17 h 11')}", f"at {nbsp('5:11 PM')}")
    context = make_context("fr", eta_at=at)
    html = {
        "email": composer.render("email", context).html,
        "telegram": composer.render("telegram", context).text,  # Telegram's HTML parse mode
        "blog": composer.render("blog", context).html,
        "push": composer.render("push", context).text,  # folded into one line, its clock kept whole
    }
    for channel, text in html.items():
        assert f"vers {nbsp('17 h 11')}" in text, channel
        assert "17 h 11" not in text, channel


@pytest.mark.parametrize("words", range(60, 75))
def test_a_thread_or_a_telegram_split_never_falls_inside_a_time(words: int) -> None:
    text = "mot " * words + f"vers {nbsp('17 h 11')}, " + "puis " * 60
    for parts in (split_x_thread(text, 280), split_text(text, 300)):
        assert all(nbsp("17 h 11") in part for part in parts if "17" in part), parts
