"""Machine-made mail detection (`channels.email_automated`), measured on written examples.

`payloads/email/machine_eval/tuning.mbox` is the set the rules were tuned on; `heldout.mbox` was
written at the same time and never tuned on. Both hold messages in the shapes of real ones
(each names its shape in `X-Test-Shape`, its truth in `X-Test-Label`). `pytest
tests/channels/test_email_automated.py -s` prints the figures.
"""

from __future__ import annotations

import mailbox
from pathlib import Path

import pytest

from channels.email_automated import is_automatic, looks_automatic
from channels.email_parse import parse_message, parse_reply

EVAL = Path(__file__).parent.parent / "payloads" / "email" / "machine_eval"
DOMAIN = "reply.shop.example"
TO = "reply+42.0123456789abcdef@reply.shop.example"


def verdicts(name: str) -> list[tuple[str, str, str]]:
    """(truth, shape, reason) of every message in one set, through the listener's own parsing."""
    box = mailbox.mbox(EVAL / f"{name}.mbox", create=False)
    try:
        raws = [box.get_bytes(key) for key in box.iterkeys()]
    finally:
        box.close()
    found = []
    for raw in raws:
        message = parse_message(raw)
        sender = str(message["Return-Path"] or "").strip()
        reason = is_automatic(message, sender)
        if not reason:
            (reply,) = parse_reply(raw, [TO], DOMAIN, mail_from=sender)
            reason = str(reply.raw["automated"])
        found.append((str(message["X-Test-Label"]), str(message["X-Test-Shape"]), reason))
    return found


def figures(name: str) -> tuple[float, float, list[str]]:
    """Recall on machine mail, precision of the "machine" verdict, and every mistake."""
    found = verdicts(name)
    machine = [reason for truth, _, reason in found if truth == "machine"]
    flagged = [truth for truth, _, reason in found if reason]
    mistakes = [f"{truth}: {shape} -> {reason or 'human'}" for truth, shape, reason in found
                if bool(reason) != (truth == "machine")]  # fmt: skip
    recall = sum(1 for reason in machine if reason) / len(machine)
    precision = flagged.count("machine") / len(flagged)
    print(f"\n{name}: {len(found)} messages ({len(machine)} machine-made), recall {recall:.1%}, "
          f"precision {precision:.1%}", *mistakes, sep="\n  ")  # fmt: skip
    return recall, precision, mistakes


def test_sets_are_big_enough_and_a_third_is_held_out() -> None:
    tuning, heldout = verdicts("tuning"), verdicts("heldout")
    for label in ("machine", "human"):
        assert sum(t == label for t, _, _ in tuning) + sum(t == label for t, _, _ in heldout) >= 40
    assert len(heldout) * 3 == len(tuning) + len(heldout)


def test_figures_on_the_tuning_set() -> None:
    recall, precision, _ = figures("tuning")
    assert recall >= 0.95 and precision >= 0.95


def test_figures_on_the_heldout_set() -> None:
    recall, precision, _ = figures("heldout")
    assert recall >= 0.85 and precision >= 0.85


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
