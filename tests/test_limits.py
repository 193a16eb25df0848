"""Length limits: X weighted counting and threads, Telegram splits, truncation, subjects."""

from __future__ import annotations

import re

import pytest

from channels.limits import (
    fit_subject,
    split_text,
    split_x_thread,
    truncate_at_word,
    visible_length,
    x_weighted_length,
)

URL_SHORT = "https://x.co/a"
URL_LONG = "https://status.maison-exemple.fr/incidents/42?utm_source=x&utm_medium=social&ref=" + "a" * 120


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Paiement", 8),
        ("éàçœ", 4),  # Latin accents weigh 1
        ("e\u0301", 1),  # NFC: e + combining acute is one "é"
        ("😀", 2),
        ("👨‍👩‍👧", 2),  # a ZWJ family is one emoji
        ("🇫🇷", 2),  # a flag (two regional indicators) too
        ("日本語", 6),  # CJK weighs 2
        ("—", 1),  # general punctuation 8208–8223 weighs 1
        (URL_SHORT, 23),
        (URL_LONG, 23),
        (f"Voir {URL_LONG}.", 5 + 23 + 1),  # the final full stop is not part of the URL
    ],
)
def test_x_weighted_length(text: str, expected: int) -> None:
    assert x_weighted_length(text) == expected


def test_short_text_is_one_post_without_numbering() -> None:
    assert split_x_thread("  Paiement rétabli, merci ! https://x.co/a  ") == [
        "Paiement rétabli, merci ! https://x.co/a"
    ]


def test_thread_parts_fit_are_numbered_and_keep_urls_whole() -> None:
    paragraph = (
        "Le paiement par carte échoue pour une partie d'entre vous depuis 13 h. Votre panier est conservé. "
        f"Suivez l'incident ici {URL_LONG} et sur notre page 😀. Nous revenons vers vous très vite."
    )
    text = "\n\n".join([paragraph] * 6)
    parts = split_x_thread(text)
    total = len(parts)
    assert total > 1
    for index, part in enumerate(parts, start=1):
        assert x_weighted_length(part) <= 280
        assert part.endswith(f" {index}/{total}")
    joined = " ".join(re.sub(r" \d+/\d+$", "", part) for part in parts)
    assert joined.count(URL_LONG) == 6
    assert joined.split() == text.split()


def test_thread_cuts_an_endless_word_but_not_its_url() -> None:
    word = "a" * 400 + URL_LONG + "b" * 400
    parts = split_x_thread(word, limit=280)
    assert all(x_weighted_length(part) <= 280 for part in parts)
    assert sum(URL_LONG in part for part in parts) == 1


def test_thread_with_many_parts_keeps_numbers_in_the_limit() -> None:
    text = " ".join(f"Phrase numéro {n}." for n in range(700))
    parts = split_x_thread(text, limit=50)
    assert len(parts) >= 100
    assert all(x_weighted_length(part) <= 50 for part in parts)
    assert parts[-1].endswith(f" {len(parts)}/{len(parts)}")


def test_telegram_split_of_long_html() -> None:
    line = 'Le <b>paiement</b> échoue &amp; on s\'en occupe : <a href="https://x.co/a b">détails ici</a> 😀'
    paragraphs = ["\n".join([line] * 5) for _ in range(30)]
    text = "\n\n".join(paragraphs)
    assert len(text) > 10_000
    parts = split_text(text, 4096)
    assert len(parts) > 1
    for part in parts:
        assert visible_length(part) <= 4096
        assert part.count("<b>") == part.count("</b>")
        assert part.count("<a ") == part.count("</a>")
        assert not re.search(r"<[^>]*$|^[^<]*>", part)  # no tag cut open
    assert " ".join(parts).split() == text.split()


def test_telegram_split_closes_and_reopens_a_tag_cut_inside_a_line() -> None:
    text = "<b>" + " ".join(["mot"] * 3000) + "</b> fin &amp; suite"
    parts = split_text(text, 4096)
    assert len(parts) == 3
    assert all(part.startswith("<b>") for part in parts)
    assert all(part.count("<b>") == part.count("</b>") for part in parts)
    assert all(visible_length(part) <= 4096 for part in parts)
    assert parts[-1].endswith("fin &amp; suite")


def test_telegram_split_never_cuts_an_entity() -> None:
    text = "&amp;" * 5000
    parts = split_text(text, 4096)
    assert [visible_length(part) for part in parts] == [4096, 904]
    assert all(re.fullmatch(r"(&amp;)+", part) for part in parts)


def test_visible_length() -> None:
    assert visible_length('<b>A&amp;B</b> <a href="https://x.co/a">lien</a>') == 8
    assert visible_length("😀") == 2  # Telegram counts UTF-16 code units


def test_truncate_at_word() -> None:
    text = "Paiement indisponible : nous enquêtons et revenons vers vous très vite"
    assert truncate_at_word(text, 200) == text
    short = truncate_at_word(text, 30)
    assert short == "Paiement indisponible : nous…"
    assert len(short) <= 30
    assert truncate_at_word("x" * 100, 10) == "x" * 9 + "…"
    assert truncate_at_word(text, 30, ellipsis="...") == "Paiement indisponible..."


def test_fit_subject_is_one_line_within_78() -> None:
    subject = (
        "[Maison Exemple]   Commande,\n Paiement et Suivi de commande :\tcorrectif en place, nous surveillons"
    )
    fitted = fit_subject(subject)
    assert len(fitted) <= 78
    assert "\n" not in fitted and "\t" not in fitted and "  " not in fitted
    assert fitted.startswith("[Maison Exemple] Commande, Paiement") and fitted.endswith("…")
    assert fit_subject("[Maison Exemple] Résolu") == "[Maison Exemple] Résolu"
