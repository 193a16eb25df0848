"""The texts we write to one customer: the resolution answer thanks once (issue #10, item 12)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from broadcaster.inbox.reply_templates import IncidentState, ReplyTemplates
from tests.conftest import make_settings

THANKS = re.compile(r"merci|thank", re.IGNORECASE)
RESOLVED = IncidentState(
    id=4, title="Paiement indisponible", status="resolved", impact="major", components=("checkout",),
    latest_update_id=0, eta_at=None, next_update_at=None, alternative="", compensation="",
)  # fmt: skip
MESSAGES = {
    "fr": (
        "Le paiement fonctionne de nouveau. Merci pour votre patience.",
        "Le paiement fonctionne de nouveau.",
    ),
    "en": ("Payment works again. Thank you for your patience.", "Payment works again."),
}


@pytest.mark.parametrize("locale", ["fr", "en"])
def test_the_resolution_answer_thanks_the_customer_once(locale: str) -> None:
    templates = ReplyTemplates(make_settings("sqlite+aiosqlite:///:memory:"))
    now = datetime(2026, 11, 12, 15, 0, tzinfo=UTC)
    for message in MESSAGES[locale]:  # the community manager thanks, or leaves it to the template
        text = templates.render("resolution", locale, incident=RESOLVED, now=now, customer_name="Léa",
                                message=message)  # fmt: skip
        assert message in text and len(THANKS.findall(text)) == 1, text
