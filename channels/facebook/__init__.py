"""A Facebook page: one post per incident, follow-ups as comments; messages and comments come
back by webhook."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from channels.base import Capabilities, Inbound, Overflow
from channels.facebook.redaction import LOG_RULES
from channels.facebook.settings import FacebookSettings
from channels.limits import truncate_at_word
from channels.spec import ChannelSpec, Fitted, LiveAdapter

__all__ = ["SPEC"]


def _fit(texts: Mapping[str, str], caps: Capabilities, _md: Callable[[str], str]) -> Fitted:
    return Fitted((truncate_at_word(texts["body"], caps.max_body),))


def _build(section: FacebookSettings) -> LiveAdapter:
    from channels.facebook.adapter import FacebookChannel

    return LiveAdapter(FacebookChannel(section), 2, section.rate_per_second)


SPEC = ChannelSpec(
    name="facebook",
    settings=FacebookSettings,
    # Page posts accept 63,206 characters.
    capabilities=Capabilities(
        max_body=63206, overflow=Overflow.TRUNCATE, inbound=Inbound.WEBHOOK, threads=True
    ),
    parts=("body",),
    fit=_fit,
    labels={"fr": "Facebook", "en": "Facebook"},
    build=_build,
    go_live="channels.facebook.page_id and page_access_token",
    public_target="page",
    seen_by_everybody=True,
    notice_hours=1,
    log_rules=LOG_RULES,
)
