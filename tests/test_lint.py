"""The crisis linter: clean FR/EN drafts pass, each rule fires in both languages, no false positives."""

from __future__ import annotations

from dataclasses import replace

import pytest

from broadcaster.compose.lint import RULES, Draft, Finding, has_errors, lint, thanks_in
from broadcaster.compose.render import Composer
from broadcaster.message import RenderedMessage
from broadcaster.publishing.drafting import UpdateDraft, preview
from tests.conftest import make_settings

GOOD_FR = (
    "Notre site est indisponible et vous ne pouvez pas passer commande. Nous sommes sincèrement "
    "désolés pour la gêne occasionnée. Nos équipes travaillent à rétablir l'accès vers 14h30. "
    "En attendant, vous pouvez commander par téléphone au 01 23 45 67 89. Prochaine information à 15h."
)
GOOD_EN = (
    "Our website is unavailable and you cannot place orders. We are truly sorry for the trouble. "
    "Our team is working to bring it back around 2:30 PM. Meanwhile, you can order by phone on "
    "+33 1 23 45 67 89. Next update at 3 PM."
)
RESOLVED_FR = "Le site fonctionne de nouveau normalement depuis 15h10. Merci pour votre patience !"
RESOLVED_EN = "The site has been working normally again since 3:10 PM. Thank you for your patience!"

# A first update that satisfies every flag, so only the rule under test can fire.
BASE = Draft(
    kind="update",
    messages={"fr": GOOD_FR},
    is_first_update=True,
    has_eta=True,
    has_next_update=True,
    critical_components_down=True,
    has_alternative=True,
)


def only(findings: list[Finding], rule: str) -> list[Finding]:
    return [f for f in findings if f.rule == rule]


def test_good_first_update_in_french_and_english_has_no_findings() -> None:
    assert lint(replace(BASE, messages={"fr": GOOD_FR, "en": GOOD_EN})) == []


def test_good_update_without_alternative_flag_finds_the_phone_in_the_text() -> None:
    draft = replace(BASE, messages={"fr": GOOD_FR, "en": GOOD_EN}, has_alternative=False)
    assert lint(draft) == []


def test_good_resolution_with_thanks_has_no_findings() -> None:
    draft = Draft(kind="resolved", messages={"fr": RESOLVED_FR, "en": RESOLVED_EN})
    assert lint(draft) == []


@pytest.mark.parametrize(
    ("rule", "severity", "text", "excerpt"),
    [
        ("blame", "error", "Désolés ! Vérifiez votre connexion puis réessayez plus tard.", "votre connexion"),
        ("blame", "error", "Sorry! Please clear your cache and try again in a while.", "clear your cache"),
        ("blame", "error", "Désolés, le problème vient de votre côté pour l'instant.", "de votre côté"),
        ("blame", "error", "Sorry, this looks like a user error for now, we are checking.", "user error"),
        (
            "jargon",
            "warning",
            "Désolés : notre base de données ne répond plus pour le moment.",
            "base de données",
        ),
        ("jargon", "warning", "Désolés, le site affiche une erreur 503 pour le moment.", "erreur 503"),
        ("jargon", "warning", "Sorry, our DNS provider is failing and pages do not load.", "DNS"),
        ("jargon", "warning", "Sorry, a failed deployment broke the checkout page for now.", "deployment"),
        ("jargon", "warning", "Sorry, pages answer with a 502 right now.", "502"),
        ("over-promise", "error", "Désolés. Le retour du site est garanti avant midi.", "garanti"),
        (
            "over-promise",
            "error",
            "Désolés. Dans 5 minutes c'est réglé, promis.",
            "Dans 5 minutes c'est réglé",
        ),
        (
            "over-promise",
            "error",
            "Sorry. This will never happen again, we checked everything.",
            "will never happen again",
        ),
        ("over-promise", "error", "Sorry, the site will be back 100% by noon.", "100%"),
        ("over-promise", "error", "Sorry, a fix is guaranteed within the hour.", "guaranteed"),
        ("minimising", "error", "Désolés pour ce petit souci sur le paiement des commandes.", "petit souci"),
        (
            "minimising",
            "error",
            "Désolés, rien de grave : le paiement est seulement ralenti.",
            "rien de grave",
        ),
        ("minimising", "error", "Sorry for this minor glitch in the payment page today.", "minor glitch"),
        (
            "minimising",
            "error",
            "Sorry, it's just a small hiccup affecting only a few users.",
            "small hiccup",
        ),
    ],
)
def test_phrase_rules_fire_in_french_and_english(rule: str, severity: str, text: str, excerpt: str) -> None:
    findings = only(lint(replace(BASE, messages={"fr": text})), rule)
    assert [(f.severity, f.excerpt, f.locale) for f in findings][:1] == [(severity, excerpt, "fr")]
    assert f'"{excerpt}"' in findings[0].message
    assert "\n" not in findings[0].message


def test_every_matched_phrase_is_reported_in_text_order() -> None:
    text = "Sorry, it's just a small hiccup affecting only a few users, nothing serious."
    found = only(lint(replace(BASE, messages={"en": text})), "minimising")
    assert [f.excerpt for f in found] == ["small hiccup", "only a few users", "nothing serious"]


@pytest.mark.parametrize(
    ("text", "locale"),
    [
        ("Le site est indisponible, nos équipes travaillent à le rétablir au plus vite.", "fr"),
        ("The website is unavailable, our team is working to restore it as fast as possible.", "en"),
    ],
)
def test_first_update_without_apology_warns(text: str, locale: str) -> None:
    found = only(lint(replace(BASE, messages={locale: text})), "no-apology")
    assert [(f.severity, f.locale) for f in found] == [("warning", locale)]
    assert lint(replace(BASE, messages={locale: text}, is_first_update=False)) == []


@pytest.mark.parametrize("text", [GOOD_FR, GOOD_EN])
def test_update_without_eta_or_next_update_warns(text: str) -> None:
    findings = lint(replace(BASE, messages={"xx": text}, has_eta=False, has_next_update=False))
    assert [(f.rule, f.severity, f.locale) for f in findings] == [
        ("no-eta", "warning", ""),
        ("no-next-update", "warning", ""),
    ]


@pytest.mark.parametrize(
    ("text", "locale"),
    [
        ("Nous sommes désolés : le paiement est indisponible, nous travaillons à le rétablir.", "fr"),
        ("We are sorry: payment is unavailable and we are working to restore it.", "en"),
    ],
)
def test_checkout_down_without_alternative_warns(text: str, locale: str) -> None:
    found = only(lint(replace(BASE, messages={locale: text}, has_alternative=False)), "no-alternative")
    assert [(f.severity, f.locale) for f in found] == [("warning", locale)]
    assert "phone" in found[0].message


@pytest.mark.parametrize(
    ("text", "locale"),
    [
        ("Le site fonctionne de nouveau normalement, notre équipe commerciale reste disponible.", "fr"),
        ("The site is working normally again and orders are processed as usual.", "en"),
    ],
)
def test_resolution_without_thanks_warns(text: str, locale: str) -> None:
    # "commerciale" contains "merci" but is no thanks.
    found = only(lint(Draft(kind="resolved", messages={locale: text})), "no-thanks")
    assert [(f.severity, f.locale) for f in found] == [("warning", locale)]


@pytest.mark.parametrize(("locale", "text"), [("fr", "   \n\t "), ("en", "Oops."), ("fr_CA", "")])
def test_empty_or_too_short_message_is_an_error(locale: str, text: str) -> None:
    findings = lint(replace(BASE, messages={locale: text}))
    assert [(f.rule, f.severity, f.locale) for f in findings] == [("empty", "error", locale)]
    assert has_errors(findings)


def test_draft_without_any_message_is_empty() -> None:
    assert [f.rule for f in lint(replace(BASE, messages={}))] == ["empty"]


def test_matching_ignores_case_and_accents() -> None:
    assert only(lint(replace(BASE, messages={"fr": "Desole, le site est indisponible."})), "no-apology") == []
    found = only(lint(replace(BASE, messages={"fr": "Désolés. VERIFIEZ VOTRE CONNEXION svp."})), "blame")
    assert [f.excerpt for f in found] == ["VOTRE CONNEXION"]
    found = only(lint(replace(BASE, messages={"fr": "Désolés, vérifiez votre connection."})), "blame")
    assert [f.excerpt for f in found] == ["votre connection"]


def test_ordinary_words_are_not_jargon() -> None:
    text = (
        "Désolés : la serveuse du salon APIculture a caché le dnsx, nous servons les clients. "
        "The observer reserved 1 500 € and 503 € for them. Plus de 500 commandes, extension de garantie."
    )
    assert lint(replace(BASE, messages={"fr": text})) == []


def test_facts_differ_between_locales() -> None:
    fr = "Nous sommes désolés. Retour prévu vers 14h30, appelez le 01 23 45 67 89."
    en = "We are sorry. Expected back around 3:30 PM, call +33 1 23 45 67 89."
    found = lint(replace(BASE, messages={"fr": fr, "en": en}))
    assert [(f.rule, f.severity, f.locale) for f in found] == [("facts-differ", "warning", "fr")]
    assert found[0].excerpt == "3:30 PM, 14h30"
    same = "We are sorry. Expected back around 2:30 PM, call +33 1 23 45 67 89."
    assert lint(replace(BASE, messages={"fr": fr, "en": same})) == []


def test_facts_differ_reads_numbers_per_locale() -> None:
    fr = "Désolés : 12,5 % des commandes (1 500 clients) sont touchées, retour dans 2 h."
    en = "Sorry: 12.5% of orders (1,500 customers) are affected, back in 2 hours."
    assert lint(replace(BASE, messages={"fr": fr, "en": en})) == []
    wrong = "Sorry: 12.5% of orders (1,600 customers) are affected, back in 2 hours."
    found = lint(replace(BASE, messages={"fr": fr, "en": wrong}))
    assert [(f.rule, f.excerpt) for f in found] == [("facts-differ", "1,600, 1 500")]


def rendered(channel: str, parts: tuple[str, ...], title: str = "", locale: str = "fr") -> RenderedMessage:
    return RenderedMessage(channel=channel, locale=locale, kind="update", parts=parts, title=title)


def test_truncated_push_body_and_email_title_warn() -> None:
    cut = [
        rendered("push", ("Nous sommes désolés, le site est indisponible et nos équipes…",), title="Panne"),
        rendered("email", (GOOD_FR,), title="Incident en cours sur la boutique : paiement impossible pour…"),
        rendered("telegram", (GOOD_FR, GOOD_FR)),  # Telegram splits: nothing is lost
    ]
    found = lint(BASE, cut)
    assert [(f.rule, f.severity, f.channel, f.locale) for f in found] == [
        ("over-length", "warning", "email", "fr"),
        ("over-length", "warning", "push", "fr"),
    ]
    assert found[1].excerpt.endswith("nos équipes")
    assert "push (fr)" in found[1].message


def test_ellipsis_written_by_the_community_manager_is_not_a_cut() -> None:
    own = "Nous sommes désolés, nous revenons très vite…"
    draft = replace(BASE, messages={"fr": own}, has_alternative=True)
    assert only(lint(draft, [rendered("push", (own,))]), "over-length") == []


def test_long_x_thread_warns() -> None:
    found = lint(BASE, [rendered("twitter", ("a",) * 5, locale="en"), rendered("twitter", ("b",) * 4)])
    assert [(f.rule, f.channel, f.locale) for f in found] == [("over-length", "twitter", "en")]
    assert "5 posts" in found[0].message


def test_findings_are_ordered_by_rule_then_locale() -> None:
    draft = Draft(kind="update", messages={"fr": "Petit souci serveur.", "en": "Minor glitch, sorry."})
    findings = lint(draft)
    keys = [(RULES.index(f.rule), f.locale) for f in findings]
    assert keys == sorted(keys)
    assert findings == lint(draft)
    assert has_errors(findings)


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="kind"):
        Draft(kind="later", messages={})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kind", "phase"),
    [
        ("resolved", ""),
        ("postmortem", ""),
        ("maintenance_notice", "completed"),
        ("maintenance_notice", "cancelled"),
    ],
)
def test_no_alternative_is_asked_once_it_is_over(kind: str, phase: str) -> None:
    over = Draft(kind=kind, messages={"fr": RESOLVED_FR, "en": RESOLVED_EN}, critical_components_down=True,
                 phase=phase, has_schedule=True)  # fmt: skip
    assert "no-alternative" not in {f.rule for f in lint(over)}


@pytest.mark.parametrize(("kind", "phase"), [("update", ""), ("maintenance_notice", "notice")])
def test_no_alternative_is_still_asked_while_checkout_is_down_or_about_to_be(kind: str, phase: str) -> None:
    text = "Le paiement est interrompu. Nous sommes désolés, nous vous tenons informés."
    live = Draft(
        kind=kind, messages={"fr": text}, critical_components_down=True, phase=phase, has_schedule=True
    )
    assert "no-alternative" in {f.rule for f in lint(live)}


def test_a_resolution_preview_with_checkout_and_no_alternative_asks_for_none() -> None:
    settings = make_settings("sqlite+aiosqlite:///:memory:", brand={"alternative": {}})
    draft = UpdateDraft(
        status="resolved", message="Le paiement fonctionne de nouveau. Merci pour votre patience."
    )
    found = preview(settings, Composer(), title="Paiement", impact="major", components=["checkout"],
                    draft=draft, kind="resolved", is_first=False)  # fmt: skip
    assert "no-alternative" not in {f.rule for f in found.findings}


@pytest.mark.parametrize(
    ("text", "thanks"),
    [
        ("Le paiement fonctionne de nouveau. Merci pour votre patience.", True),
        ("Merci de votre compréhension.", True),
        ("Merci d'avoir patienté, tout fonctionne.", True),
        ("Merci de nous avoir fait confiance.", True),
        ("Nous vous remercions de votre patience.", True),
        ("Payment works again. Thank you for your patience.", True),
        ("Thanks to all of you for your messages.", True),
        ("We appreciate your patience.", True),
        ("Our team appreciates your patience.", True),
        ("Nous remercions nos clients de leur patience.", True),
        ("Merci à nos équipes et à vous pour votre patience.", True),
        # Asking, not thanking: "merci de + verb" is "please…", "thanks to" gives a cause.
        ("Tout fonctionne. Merci de repasser votre commande.", False),
        ("Merci de bien vouloir vous reconnecter.", False),
        ("Thanks to our provider's fix, payments work again.", False),
        # Thanking one's own teams, or "appreciating that", does not thank the reader.
        ("Grateful for our operations and engineering teams.", False),
        ("Merci à nos équipes mobilisées toute la nuit.", False),
        ("We appreciate that this was frustrating.", False),
        ("Le paiement fonctionne de nouveau.", False),
    ],
)
def test_thanks_in_reads_french_and_english(text: str, thanks: bool) -> None:
    assert thanks_in(text) is thanks
    resolution = lint(Draft(kind="resolved", messages={"fr": text}))
    assert ("no-thanks" not in {f.rule for f in resolution}) is thanks  # the rule and the flag agree
