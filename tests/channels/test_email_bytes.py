"""`build_email_bytes` (the send path) must put on the wire what `build_email` describes."""

from __future__ import annotations

from datetime import UTC, datetime
from email import message_from_bytes, policy

import pytest

from broadcaster.message import RenderedMessage
from channels.base import Target
from channels.email.message import build_email, build_email_bytes

NOW = datetime(2026, 11, 22, 13, 5, tzinfo=UTC)
HEADERS = ("From", "To", "Subject", "Date", "Message-ID", "List-Unsubscribe", "List-Unsubscribe-Post",
           "Reply-To", "MIME-Version", "Content-Language")  # fmt: skip


@pytest.mark.parametrize("html", ["<p>Le site est <b>indisponible</b>&nbsp;: désolés.</p>", ""])
@pytest.mark.parametrize("from_name", ["", "Maison Exemple", "Équipe Maison"])
@pytest.mark.parametrize("target", [Target("a@b.example", "fr_CA", "https://s.example/u/tok", "7.r"),
                                    Target("a@b.example")])  # fmt: skip
def test_same_message_as_build_email(html: str, from_name: str, target: Target) -> None:
    text = (
        "Bonjour,\n\nLe site est indisponible depuis 14 h. "
        + "Très long paragraphe. " * 12
        + "\n. \nFrom x \n"
    )
    message = RenderedMessage(
        "email", "fr", "update", (text,), title="[Maison] Site web : nous enquêtons", html=html
    )
    kwargs = dict(idempotency_key="7:email:a@b.example", from_address="status@shop.example",
                  from_name=from_name, reply_domain="reply.shop.example", now=NOW)  # fmt: skip
    expected = message_from_bytes(build_email(message, target, **kwargs).as_bytes(), policy=policy.default)
    wire = build_email_bytes(message, target, **kwargs)
    got = message_from_bytes(wire, policy=policy.default)

    assert b"\r\n" in wire and b"\n" not in wire.replace(b"\r\n", b"")
    assert all(len(line) <= 998 for line in wire.split(b"\r\n"))
    for name in HEADERS:
        assert str(got[name]) == str(expected[name]), name
    assert got.get_content_type() == expected.get_content_type()
    got_parts = list(got.walk())[1:] if got.is_multipart() else [got]
    expected_parts = list(expected.walk())[1:] if expected.is_multipart() else [expected]
    assert [p.get_content() for p in got_parts] == [p.get_content() for p in expected_parts]
    assert not any(p.defects for p in got.walk())
