"""X (Twitter): one public post per update, a thread when it is longer than a post; mentions and
DMs come back by polling."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from channels.base import Capabilities, Inbound, Overflow
from channels.limits import split_x_thread
from channels.spec import ChannelSpec, Fitted, LiveAdapter
from channels.twitter.redaction import LOG_RULES
from channels.twitter.settings import TwitterSettings

__all__ = ["SPEC"]


def _fit(texts: Mapping[str, str], caps: Capabilities, _md: Callable[[str], str]) -> Fitted:
    return Fitted(tuple(split_x_thread(texts["body"], caps.max_body)))


def _build(section: TwitterSettings) -> LiveAdapter:
    from channels.twitter.adapter import TwitterChannel

    return LiveAdapter(TwitterChannel(section), 2, 0.0)  # the posting budget (100 / 15 min) is the adapter's


SPEC = ChannelSpec(
    name="twitter",
    settings=TwitterSettings,
    # 280 weighted characters, URLs count 23 (developer.x.com "counting characters").
    capabilities=Capabilities(max_body=280, overflow=Overflow.SPLIT, inbound=Inbound.POLL, threads=True),
    parts=("body",),
    fit=_fit,
    labels={"fr": "X", "en": "X"},
    build=_build,
    go_live="channels.twitter.consumer_key, consumer_secret, access_token and access_token_secret",
    public_target="timeline",
    seen_by_everybody=True,
    notice_hours=1,
    log_rules=LOG_RULES,
)
