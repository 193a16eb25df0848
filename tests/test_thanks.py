"""`thanks_in` on real public resolution and outage messages (tests/thanks_*.tsv).

`thanks_examples.tsv` is the set the THANKS phrases were tuned on; `thanks_heldout.tsv` was drawn
from the same collection at random (fixed seed, a quarter of each label and locale) before any
result was looked at, and is never tuned on. Run with `pytest -s` to see both accuracies.

A miss costs the reader: "none" read as thanks drops the template's closing thanks, "thanks" read
as none makes customers read the thanks twice.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from broadcaster.compose.lint import thanks_in

HERE = Path(__file__).parent
LABELS = ("thanks", "none")
LOCALES = ("fr", "en")
Example = tuple[str, str, str, str]

#: The tuning set may lose at most ~1 example in 20 before a rule change is refused.
TUNING_FLOOR = 0.95
#: Unseen real text: a floor well under the tuning figure, so the number stays honest.
HELDOUT_FLOOR = 0.85


def load(name: str) -> list[Example]:
    """Rows `label<TAB>locale<TAB>text<TAB>source`; lines starting with # are comments."""
    rows: list[Example] = []
    for number, line in enumerate((HERE / name).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split("\t")
        assert len(fields) == 4, f"{name}:{number}: expected 4 tab-separated fields"
        label, locale, text, source = fields
        rows.append((label, locale, text, source))
    return rows


MAIN = load("thanks_examples.tsv")
HELDOUT = load("thanks_heldout.tsv")


def accuracy(name: str, rows: list[Example]) -> float:
    """Print accuracy, per label and locale, and every miss; return the accuracy."""
    results = [
        (label, locale, text, "thanks" if thanks_in(text) else "none") for label, locale, text, _ in rows
    ]
    right = sum(label == got for label, _, _, got in results)
    print(f"\n{name}: {right / len(results):.1%} on its {len(results)} labelled examples")
    totals = Counter((label, locale) for label, locale, _, _ in results)
    hits = Counter((label, locale) for label, locale, _, got in results if label == got)
    per_group = (
        f"{label}/{locale} {hits[label, locale]}/{n}" for (label, locale), n in sorted(totals.items())
    )
    print("  right: " + ", ".join(per_group))
    for label, locale, text, got in results:
        if label != got:
            print(f"  {label} -> {got} [{locale}]: {text}")
    return right / len(results)


def test_example_files_are_well_formed() -> None:
    assert len(MAIN) + len(HELDOUT) >= 110
    for label, locale, text, source in MAIN + HELDOUT:
        assert label in LABELS, text
        assert locale in LOCALES, text
        assert text.strip() == text and text, source
        assert source.startswith(("http://", "https://")) or ":" in source, text
    leaked = {t for _, _, t, _ in MAIN} & {t for _, _, t, _ in HELDOUT}
    assert not leaked, "held-out examples leak into the tuning set"
    for rows in (MAIN, HELDOUT):
        assert {(label, locale) for label, locale, _, _ in rows} == {(a, b) for a in LABELS for b in LOCALES}


def test_accuracy_on_tuning_set() -> None:
    assert accuracy("thanks_examples.tsv", MAIN) >= TUNING_FLOOR


def test_accuracy_on_heldout_set() -> None:
    assert accuracy("thanks_heldout.tsv", HELDOUT) >= HELDOUT_FLOOR
