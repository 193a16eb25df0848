"""Intent and language detection on labelled customer messages (tests/intent_*.tsv).

`intent_examples.tsv` is the set the patterns were tuned on; `intent_heldout.tsv` was written
before the classifier and never used to tune it. Run with `pytest -s` to see both accuracies.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path

import pytest

import broadcaster.inbox.intent as intent_module
from broadcaster.inbox.intent import INTENTS, MAX_CHARS, Classification, classify, detect_language

HERE = Path(__file__).parent
Example = tuple[str, str, str]


def load(name: str) -> list[Example]:
    """Rows `text<TAB>intent<TAB>language`; lines starting with # are comments."""
    rows: list[Example] = []
    for number, line in enumerate((HERE / name).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split("\t")
        assert len(fields) == 3, f"{name}:{number}: expected 3 tab-separated fields"
        text, intent, language = fields
        rows.append((text, intent, language))
    return rows


MAIN = load("intent_examples.tsv")
HELDOUT = load("intent_heldout.tsv")


def accuracy(name: str, rows: list[Example]) -> tuple[float, float]:
    """Print intent/language accuracy, per-intent recall and the confusions; return both accuracies."""
    results = [(intent, language, classify(text)) for text, intent, language in rows]
    intent_ok = sum(want == got.intent for want, _, got in results) / len(results)
    language_ok = sum(want == got.language for _, want, got in results) / len(results)
    print(f"\n{name}: {len(results)} examples, intent accuracy {intent_ok:.3f}, language {language_ok:.3f}")
    totals = Counter(want for want, _, _ in results)
    hits = Counter(want for want, _, got in results if want == got.intent)
    print("  recall: " + ", ".join(f"{i} {hits[i]}/{totals[i]}" for i in INTENTS if totals[i]))
    confusions = Counter((want, got.intent) for want, _, got in results if want != got.intent)
    for (want, got), count in confusions.most_common():
        print(f"  {want} -> {got}: {count}")
    return intent_ok, language_ok


def test_example_files_are_well_formed() -> None:
    assert len(MAIN) >= 200
    assert len(HELDOUT) == 40
    for text, intent, language in MAIN + HELDOUT:
        assert text.strip()
        assert intent in INTENTS, text
        assert language in ("fr", "en", ""), text
    assert not {t for t, _, _ in MAIN} & {t for t, _, _ in HELDOUT}, (
        "held-out examples leak into the main set"
    )
    per_intent = Counter(intent for _, intent, _ in MAIN)
    assert min(per_intent[i] for i in INTENTS) >= 20, per_intent


def test_accuracy_on_tuning_set() -> None:
    intent_ok, language_ok = accuracy("intent_examples.tsv", MAIN)
    assert intent_ok >= 0.9
    assert language_ok >= 0.9


def test_accuracy_on_heldout_set() -> None:
    intent_ok, language_ok = accuracy("intent_heldout.tsv", HELDOUT)
    assert intent_ok >= 0.8
    assert language_ok >= 0.9


@pytest.mark.parametrize(
    ("text", "intent", "command", "argument"),
    [
        ("/status", "status_question", "/status", ""),
        ("/status@ShopBot", "status_question", "/status", ""),
        ("/subscribe checkout", "subscribe", "/subscribe", "checkout"),
        ("/subscribe@ShopBot   paiement ", "subscribe", "/subscribe", "paiement"),
        ("/subscribe", "subscribe", "/subscribe", ""),
        ("/unsubscribe", "unsubscribe", "/unsubscribe", ""),
        ("/stop", "unsubscribe", "/stop", ""),
        ("/start", "other", "/start", ""),
        ("/help", "other", "/help", ""),
        ("/lang fr", "other", "/lang", "fr"),
        ("/lang EN", "other", "/lang", "en"),
        ("/LANG en\nsecond line ignored", "other", "/lang", "en"),
        ("/foo bar baz", "other", "/foo", "bar baz"),
    ],
)
def test_commands_are_parsed_with_their_argument(text: str, intent: str, command: str, argument: str) -> None:
    result = classify(text)
    assert (result.intent, result.command, result.argument) == (intent, command, argument)
    assert result.confidence == 1.0


@pytest.mark.parametrize(
    "text", ["le /status est cassé ?", "http://shop.example/status", "/ status", "//status"]
)
def test_slashes_inside_words_are_not_commands(text: str) -> None:
    assert classify(text).command == ""


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("abonnez-moi", "subscribe"),
        ("stop", "unsubscribe"),
        ("STOP!!!", "unsubscribe"),
        ("Merciiii", "thanks"),
    ],
)
def test_plain_words_work_on_every_channel(text: str, intent: str) -> None:
    assert classify(text).intent == intent


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("le site ne marche plus ?", "fr"),
        ("Paiement REFUSÉ??", "fr"),
        ("is checkout down", "en"),
        ("cant checkout", "en"),
        ("ok", ""),
        ("?", ""),
        ("", ""),
        ("🙂🙂", ""),
    ],
)
def test_detect_language(text: str, language: str) -> None:
    assert detect_language(text) == language


@pytest.mark.parametrize(
    "text",
    [
        "<script>alert('le site est en panne ?')</script>",
        '<b onclick="x()">is the site down?</b><img src=x onerror=alert(1)>',
        "<<<>>><script",
        "",
        "   \n\t ",
        "\x00\x01\u200b\u202e",
        "سلام الموقع لا يعمل",
        "😡" * 500,
        "?!" * 3000,
    ],
)
def test_odd_input_is_classified_without_crashing(text: str) -> None:
    result = classify(text)
    assert result.intent in INTENTS
    assert result.language in ("fr", "en", "")
    assert 0.0 <= result.confidence <= 1.0


def test_html_around_a_question_does_not_hide_it() -> None:
    result = classify("<p>Bonjour,</p><p>le site est <b>en panne</b> ?</p>")
    assert (result.intent, result.language) == ("status_question", "fr")


def test_a_mebibyte_is_read_only_up_to_max_chars() -> None:
    """The first MAX_CHARS characters decide; what lies beyond them is never read."""
    filler = "blah " * ((1 << 20) // 5)
    assert classify("is the site down? " + filler).intent == "status_question"
    assert classify(filler + " unsubscribe").intent == "other"
    assert classify("a" * (1 << 20)).intent == "other"
    assert len(filler) > MAX_CHARS


def test_classification_is_immutable_and_confidence_orders_sureness() -> None:
    sure = classify("le site est en panne ?? impossible de payer")
    vague = classify("bonjour")
    assert sure.confidence > vague.confidence
    with pytest.raises(dataclasses.FrozenInstanceError):
        sure.intent = "other"  # type: ignore[misc]
    assert isinstance(sure, Classification)


def test_public_names_are_exported() -> None:
    for name in intent_module.__all__:
        assert hasattr(intent_module, name)
