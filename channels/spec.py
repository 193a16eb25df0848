"""What a channel declares about itself, once, in its package's `__init__.py`: a `ChannelSpec`.

The core reads specs (through `channels.registry`) instead of spelling channel names: which
template parts to render and how to fit them to the channel's limits, who receives it (its
subscribers, or the one public post), what to call it, how to build its live adapter.

    SPEC = ChannelSpec(
        name="push", settings=PushSettings, capabilities=Capabilities(max_body=178, ...),
        parts=("title", "body"), fit=fit_push, build=build_push,
        labels={"fr": "Notifications push", "en": "Push notifications"},
        subscribers=True, public_target="topic:all", ...
    )
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from channels.base import Capabilities, Channel
from channels.log_redaction import LogRule
from channels.settings import ChannelSection

__all__ = ["ChannelSpec", "Fit", "Fitted", "LiveAdapter"]

S = TypeVar("S", bound=ChannelSection)


@dataclass(frozen=True, slots=True)
class Fitted:
    """A rendering fitted to a channel's limits: the messages it sends, and its title and HTML."""

    parts: tuple[str, ...]
    title: str = ""
    html: str = ""


#: (rendered template parts, the channel's limits, Markdown → HTML) → what the channel sends.
Fit = Callable[[Mapping[str, str], Capabilities, Callable[[str], str]], Fitted]


@dataclass(frozen=True, slots=True)
class LiveAdapter:
    """A live adapter and how hard the dispatcher may drive it."""

    channel: Channel
    concurrency: int
    rate_per_second: float  # 0: the adapter keeps its own budget, or there is none


@dataclass(frozen=True, slots=True)
class ChannelSpec(Generic[S]):
    """One channel, as the core sees it."""

    name: str  # the `[channels.<name>]` table, the templates' folder, the outbox's channel
    settings: type[S]
    capabilities: Capabilities
    parts: tuple[str, ...]  # template parts; the first part of a titled channel is its title
    fit: Fit
    labels: Mapping[str, str]  # {locale: what people call it}
    build: Callable[[S], LiveAdapter]  # imports the adapter's library only when called
    go_live: str  # the settings that make it live, for "capture mode" fixes
    subscribers: bool = False  # people subscribe on it, each with an address of their own
    public_target: str = ""  # the one target of a channel that posts once for everybody
    seen_by_everybody: bool = False  # a drill posts there only when asked (`--public`)
    answers_alerts: bool = False  # a customer who wrote on it can be subscribed where they wrote
    staff_alerts: bool = False  # the staff can be alerted on it
    drill_audience: str = ""  # the `[drill]` key naming its test audience
    # People subscribe on it with an address of their own: its column in a subscribers CSV (and
    # `subscribers add --address <name>:…`), and how an address is checked: (normalised, "" or what
    # is wrong, naming the column).
    subscriber_column: str = ""
    check_address: Callable[[str, S], tuple[str, str]] | None = None
    addresses_ignore_case: bool = False  # two spellings of one address are one subscriber
    notice_hours: int | None = None  # the default maintenance ladder: notified this long before
    escaped_parts: Mapping[str, Callable[[str], str]] = field(default_factory=dict)  # read as markup there
    log_rules: tuple[LogRule, ...] = ()  # secrets its client libraries write into their logs, hidden

    def label(self, locale: str) -> str:
        return self.labels.get(locale.split("_")[0].split("-")[0]) or self.labels.get("en") or self.name
