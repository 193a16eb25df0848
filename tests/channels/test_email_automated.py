"""Machine-made mail detection (`channels.email.automated`), measured on written examples.

`payloads/email/machine_eval/tuning.mbox` is the set the rules were tuned on; `heldout.mbox` was
written at the same time and never tuned on; `independent.mbox` was written later by someone else
from public real shapes (each cites one in `X-Eval-Source`) and has no accuracy floor. All hold
messages in the shapes of real ones (each names its shape in `X-Test-Shape`, its truth in
`X-Test-Label`). `pytest tests/channels/test_email_automated.py -s` prints the figures.
"""

from __future__ import annotations

import mailbox
from pathlib import Path

import pytest

from channels.email.automated import is_automatic, looks_automatic
from channels.email.parse import parse_message, parse_reply

EVAL = Path(__file__).parent.parent / "payloads" / "email" / "machine_eval"
DOMAIN = "reply.shop.example"
TO = "reply+42.0123456789abcdef@reply.shop.example"


def raw_messages(name: str) -> list[bytes]:
    """Every message of one set, as the listener would receive it."""
    box = mailbox.mbox(EVAL / f"{name}.mbox", create=False)
    try:
        return [box.get_bytes(key) for key in box.iterkeys()]
    finally:
        box.close()


def verdicts(name: str) -> list[tuple[str, str, str, bool]]:
    """(truth, shape, reason, dropped) of every message in one set, through the listener's parsing.

    `dropped` is `is_automatic`'s verdict (the listener discards the message); otherwise a
    non-empty reason is `looks_automatic`'s (filed as automated, still shown to agents).
    """
    found = []
    for raw in raw_messages(name):
        message = parse_message(raw)
        sender = str(message["Return-Path"] or "").strip()
        reason = is_automatic(message, sender)
        dropped = bool(reason)
        if not reason:
            (reply,) = parse_reply(raw, [TO], DOMAIN, mail_from=sender)
            reason = str(reply.raw["automated"])
        found.append((str(message["X-Test-Label"]), str(message["X-Test-Shape"]), reason, dropped))
    return found


def figures(name: str) -> tuple[float, float, list[str]]:
    """Recall on machine mail, precision of the "machine" verdict, and every mistake.

    Also printed: how many human messages would be dropped (the worst error: nobody sees
    them) and how many filed as automated (seen, but never acted on).
    """
    found = verdicts(name)
    machine = [reason for truth, _, reason, _ in found if truth == "machine"]
    flagged = [truth for truth, _, reason, _ in found if reason]
    humans = [(reason, dropped) for truth, _, reason, dropped in found if truth == "human"]
    mistakes = [f"{truth}: {shape} -> {reason or 'human'}" for truth, shape, reason, _ in found
                if bool(reason) != (truth == "machine")]  # fmt: skip
    recall = sum(1 for reason in machine if reason) / len(machine)
    precision = flagged.count("machine") / len(flagged)
    dropped = sum(1 for _, drop in humans if drop)
    filed = sum(1 for reason, drop in humans if reason and not drop)
    print(f"\n{name}: {len(found)} messages ({len(machine)} machine-made), recall {recall:.1%}, "
          f"precision {precision:.1%}; of {len(humans)} human: {dropped} dropped, {filed} filed as "
          "automated", *mistakes, sep="\n  ")  # fmt: skip
    return recall, precision, mistakes


def test_sets_are_big_enough_and_a_third_is_held_out() -> None:
    tuning, heldout = verdicts("tuning"), verdicts("heldout")
    for label in ("machine", "human"):
        assert sum(t == label for t, *_ in tuning) + sum(t == label for t, *_ in heldout) >= 40
    assert len(heldout) * 3 == len(tuning) + len(heldout)


def test_figures_on_the_tuning_set() -> None:
    recall, precision, _ = figures("tuning")
    assert recall >= 0.95 and precision >= 0.95


def test_figures_on_the_heldout_set() -> None:
    recall, precision, _ = figures("heldout")
    assert recall >= 0.85 and precision >= 0.85


def test_independent_set_is_big_enough_and_cites_its_sources() -> None:
    found = verdicts("independent")
    for label in ("machine", "human"):
        assert sum(t == label for t, *_ in found) >= 35
    sources = [str(parse_message(raw)["X-Eval-Source"] or "") for raw in raw_messages("independent")]
    assert all(source.startswith("https://") for source in sources)


def test_figures_on_the_independent_set() -> None:
    recall, precision, mistakes = figures("independent")  # no floor: it measures, it does not gate
    assert 0 <= recall <= 1 and 0 <= precision <= 1 and all(mistakes)


@pytest.mark.parametrize(
    ("subject", "text", "reason"),
    [
        ("[AUTO GENERATED] Ticket 4411", "ok", "subject: [auto generated]"),
        ("Re: incident", '{"Type": "Notification", "TopicArn": "arn:aws:sns:x", "Message": "{}"}',
         "notification JSON (Notification)"),
        ("Re: incident", "Bonjour, je suis absente jusqu'au 18.", "text: je suis absente jusqu"),
        ("Re: incident", "stop", ""),
    ],
)  # fmt: skip
def test_looks_automatic_rules(subject: str, text: str, reason: str) -> None:
    message = parse_message(f"From: a@b.example\nSubject: {subject}\n\n{text}\n".encode())
    assert looks_automatic(message, text) == reason
