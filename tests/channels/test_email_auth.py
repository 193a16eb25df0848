"""Reading the verdict of the DMARC-checking MTA in front of us (`channels.email.auth`)."""

from __future__ import annotations

import pytest

from channels.email.auth import from_authenticated
from channels.email.parse import parse_message

ID = "mx.shop.example"
C = "c@example.com"


@pytest.mark.parametrize(
    ("headers", "sender", "authentic"),
    [
        ([f"{ID}; dmarc=pass header.from=example.com"], C, True),
        ([f"{ID}; dmarc=pass (p=reject) header.from=EXAMPLE.com"], "C@Example.COM", True),
        ([f"{ID} 1; dkim=pass (good signature) header.d=example.com header.s=s1; spf=pass"], C, True),
        ([f"{ID}; dkim=pass header.d=evil.example; dmarc=fail header.from=example.com"], C, False),
        ([f"{ID}; dmarc=none", f"{ID}; dmarc=pass header.from=example.com"], C, False),
        (["other.example; dmarc=pass header.from=example.com"], C, False),
        ([f"{ID}; dmarc=pass header.from=example.com.evil.example"], C, False),
        ([f"x.{ID}; dmarc=pass header.from=example.com"], C, False),
        ([], C, False),
        ([f"{ID}; dmarc=pass header.from=example.com"], "", False),
    ],
)  # fmt: skip
def test_only_our_mtas_topmost_pass_for_the_from_domain_counts(
    headers: list[str], sender: str, authentic: bool
) -> None:
    raw = "".join(f"Authentication-Results: {h}\n" for h in headers) + f"From: {sender}\n\nstop\n"
    assert from_authenticated(parse_message(raw.encode()), ID) is authentic
