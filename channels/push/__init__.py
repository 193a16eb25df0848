"""Push: the app's topic through FCM, and every browser subscribed through Web Push."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

from channels.base import Capabilities, Overflow
from channels.limits import fit_subject, truncate_at_word
from channels.push.settings import PushSettings
from channels.spec import ChannelSpec, Fitted, LiveAdapter

__all__ = ["SPEC"]

_BREAKABLE_SPACES = re.compile(r"[^\S\u00a0\u2007\u202f]+")


def _fit(texts: Mapping[str, str], caps: Capabilities, _md: Callable[[str], str]) -> Fitted:
    # Lock screens show one paragraph: fold the body's lines (not its no-break spaces), then cut at a word.
    body = truncate_at_word(_BREAKABLE_SPACES.sub(" ", texts["body"]).strip(), caps.max_body)
    return Fitted((body,), title=fit_subject(texts["title"], caps.max_title))


def _check_address(value: str, section: PushSettings) -> tuple[str, str]:
    """`fcm:<registration token>` or `webpush:<PushSubscription JSON>` whose endpoint we may reach."""
    from channels.base import Rejected
    from channels.push.webpush import endpoint_policy, parse_subscription

    kind, _, rest = value.partition(":")
    if kind == "fcm" and rest.strip():
        return value, ""
    if kind == "webpush":
        try:
            parse_subscription(rest, endpoint_policy(section))
        except Rejected as exc:
            return value, f"push webpush:…: {exc.reason}"
        return value, ""
    return value, f"push {value[:40]!r}: write fcm:<registration token> or webpush:<subscription JSON>"


def _build(section: PushSettings) -> LiveAdapter:
    from channels.push.adapter import PushChannel

    return LiveAdapter(PushChannel(section), 32, section.rate_per_second)


SPEC = ChannelSpec(
    name="push",
    settings=PushSettings,
    # Lock screens show about 178 characters of body and 50 of title (iOS / Android).
    capabilities=Capabilities(max_body=178, max_title=50, overflow=Overflow.TRUNCATE),
    parts=("title", "body"),
    fit=_fit,
    labels={"fr": "Notifications push", "en": "Push notifications"},
    build=_build,
    go_live="channels.push.service_account_file (FCM) or vapid_private_key_file (Web Push)",
    subscribers=True,
    subscriber_column="push",
    check_address=_check_address,
    public_target="topic:all",
    drill_audience="drill.push_device",
    notice_hours=24,
)
