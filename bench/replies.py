"""How many customer replies keep exactly their own words: our quote stripping vs reply-parser libraries.

    .venv/bin/python bench/replies.py                      # every set, every candidate installed
    .venv/bin/python bench/replies.py --set independent    # one set only
    .venv/bin/python bench/replies.py --misses             # and each miss, expected vs got

The cases are `tests/payloads/email/replies/{tune,heldout,independent}.txt` (real client layouts, our
wording); `independent.txt` was written by someone who never read the rules nor the other two sets.
A case counts when the text filed is the expected text exactly (whitespace at the ends aside).
The libraries other than ours are optional: install one (`pip install quotequail`) to compare it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REPLIES = ROOT / "tests" / "payloads" / "email" / "replies"
SETS = ("tune", "heldout", "independent")


@dataclass(frozen=True, slots=True)
class Case:
    """One reply: where it comes from, what we receive and the customer's own words in it."""

    id: str
    shape: str
    text: str
    expected: str


def load(name: str) -> list[Case]:
    """The cases of `tests/payloads/email/replies/<name>` (see the note at the top of the file)."""
    body = (REPLIES / name).read_text(encoding="utf-8")
    cases = []
    for block in body.split("\n=== ")[1:]:
        head, _, rest = block.partition("\n--- text\n")
        text, _, expected = rest.partition("\n--- expected\n")
        case_id, _, shape = head.partition("\nshape: ")
        cases.append(Case(case_id.strip(), shape.strip(), text, expected.rstrip("\n")))
    return cases


def score(strip: Callable[[str], str], cases: list[Case]) -> list[tuple[Case, str]]:
    """The cases `strip` gets wrong, with what it returned."""
    misses = []
    for case in cases:
        got = strip(case.text).strip()
        if got != case.expected.strip():
            misses.append((case, got))
    return misses


def candidates() -> dict[str, Callable[[str], str]]:
    """Ours, then each reply-parser library that is installed, as text → new text."""
    sys.path.insert(0, str(ROOT))
    from channels.email.quotes import strip_quotes

    found: dict[str, Callable[[str], str]] = {"ours (channels.email.quotes)": strip_quotes}
    try:
        import quotequail
    except ImportError:
        pass
    else:

        def quotequail_top(text: str) -> str:
            return quotequail.quote(text, quote_intro_line=True)[0][1]

        found["quotequail.quote"] = quotequail_top
    try:
        from mailparser_reply import EmailReplyParser
    except ImportError:
        pass
    else:
        parser = EmailReplyParser(languages=["en", "de", "fr", "it", "es", "da", "nl", "sv"])

        def mail_parser_reply(text: str) -> str:
            return parser.read(text).replies[0].body

        found["mail-parser-reply"] = mail_parser_reply
    try:
        from email_reply_parser import EmailReplyParser as GithubPort
    except ImportError:
        pass
    else:
        found["email-reply-parser"] = GithubPort.parse_reply
    try:
        from talon import quotations
    except ImportError:
        pass
    else:
        found["talon.extract_from_plain"] = quotations.extract_from_plain
    return found


def main() -> None:
    options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_argument("--misses", action="store_true", help="print every miss")
    options.add_argument(
        "--set", choices=SETS, action="append", dest="sets", help="only this set, repeatable"
    )
    args = options.parse_args()
    sets = {name: load(f"{name}.txt") for name in args.sets or SETS}
    for label, strip in candidates().items():
        figures = []
        for name, cases in sets.items():
            misses = score(strip, cases)
            right = len(cases) - len(misses)
            figures.append(f"{name} {right}/{len(cases)} ({right / len(cases):.0%})")
            if args.misses:
                for case, got in misses:
                    print(f"  [{label}] {name}:{case.id} ({case.shape})")
                    print(f"    want {case.expected!r}\n    got  {got!r}")
        print(f"{label:32} " + "   ".join(figures))


if __name__ == "__main__":
    main()
