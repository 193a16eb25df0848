"""What a template reads (`MessageContext`) and what rendering produces (`RenderedMessage`).

Both are plain frozen data: rendering is pure and a rendered message is stored once per
(update, channel, locale) in the outbox, then personalised per recipient by substitution.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

__all__ = [
    "Brand",
    "MessageContext",
    "MessageKind",
    "NOTICE_EXTRA",
    "NoticeFacts",
    "RenderedMessage",
    "UNSUBSCRIBE_PLACEHOLDER",
]

MessageKind = Literal["update", "resolved", "maintenance_notice", "postmortem"]

#: Placeholders a rendered message may contain; the dispatcher replaces them per recipient.
UNSUBSCRIBE_PLACEHOLDER = "__UNSUBSCRIBE_URL__"
#: The `RenderedMessage.extra` key holding a maintenance notice's `NoticeFacts`.
NOTICE_EXTRA = "notice"


@dataclass(frozen=True, slots=True)
class Brand:
    """The shop speaking: its name, public site, status page and time zone."""

    name: str
    public_url: str
    status_url: str
    timezone: str = "Europe/Paris"


@dataclass(frozen=True, slots=True)
class MessageContext:
    """Everything a template may use for one update in one locale.

    `components` holds the affected components' labels already in `locale`; `message`,
    `alternative` and `compensation` are the texts for `locale` (after the fallback chain).
    Datetimes are aware UTC; templates format them with Babel in the brand's time zone.
    """

    brand: Brand
    locale: str
    kind: MessageKind
    incident_id: int
    title: str
    impact: str
    status: str
    message: str
    published_at: datetime
    components: tuple[str, ...] = ()
    eta_at: datetime | None = None
    next_update_at: datetime | None = None
    alternative: str | None = None
    compensation: str | None = None
    is_first_update: bool = False
    incident_url: str = ""
    unsubscribe_url: str = UNSUBSCRIBE_PLACEHOLDER
    # What a follow-up changed (labels in `locale`): the impact before it (empty: unchanged),
    # the components it now also affects and those it no longer affects.
    previous_impact: str = ""
    added_components: tuple[str, ...] = ()
    removed_components: tuple[str, ...] = ()
    # A resolution: the incident's components that something else open still affects.
    still_affected: tuple[str, ...] = ()
    # Maintenance notices (kind "maintenance_notice"): which step of the ladder, and the window.
    phase: str = ""  # notice | started | completed | rescheduled | extended | cancelled
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    previous_starts_at: datetime | None = None  # before a rescheduling
    previous_ends_at: datetime | None = None  # before a rescheduling or an extension
    duration: str = ""  # the window's length in words, in `locale` ("2 h 30", "45 min")


@dataclass(frozen=True, slots=True)
class RenderedMessage:
    """One channel's message in one locale, after templates and length limits.

    `parts` has one element unless the channel splits (an X thread, several Telegram
    messages). `title` is the e-mail subject, push title or blog title; `html` the HTML
    alternative of an e-mail or the blog body in HTML.
    """

    channel: str
    locale: str
    kind: str
    parts: tuple[str, ...]
    title: str = ""
    html: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def text(self) -> str:
        """All parts joined, for previews and single-body channels."""
        return "\n\n".join(self.parts)

    def personalise(self, *, unsubscribe_url: str) -> RenderedMessage:
        """Return a copy with the per-recipient placeholders replaced (cheap string work)."""

        def sub(value: str) -> str:
            return value.replace(UNSUBSCRIBE_PLACEHOLDER, unsubscribe_url)

        return RenderedMessage(
            channel=self.channel,
            locale=self.locale,
            kind=self.kind,
            parts=tuple(sub(p) for p in self.parts),
            title=sub(self.title),
            html=sub(self.html),
            extra=self.extra,
        )

    def to_json(self) -> str:
        # Field by field: `dataclasses.asdict` deep-copies every value, a cost paid per answer.
        data = {name: getattr(self, name) for name in self.__slots__}
        data["parts"] = list(self.parts)
        return json.dumps(data, ensure_ascii=False)

    @classmethod
    def from_json(cls, raw: str) -> RenderedMessage:
        data = json.loads(raw)
        data["parts"] = tuple(data["parts"])
        return cls(**data)


def _stamp(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _parse(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) and value else None


@dataclass(frozen=True, slots=True)
class NoticeFacts:
    """What one maintenance notice announced, kept as data beside its text (in `extra`).

    The public pages read it back to show each notice once, with the window it gave and, for a
    rescheduling or a moved end, the times it replaced.
    """

    phase: str
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    previous_starts_at: datetime | None = None
    previous_ends_at: datetime | None = None

    @classmethod
    def of(cls, context: MessageContext) -> NoticeFacts:
        """The facts of the notice `context` renders."""
        return cls(
            phase=context.phase,
            starts_at=context.starts_at,
            ends_at=context.ends_at,
            previous_starts_at=context.previous_starts_at,
            previous_ends_at=context.previous_ends_at,
        )

    def to_extra(self) -> dict[str, str | None]:
        """JSON-ready: times as ISO 8601 with their offset."""
        return {
            "phase": self.phase,
            "starts_at": _stamp(self.starts_at),
            "ends_at": _stamp(self.ends_at),
            "previous_starts_at": _stamp(self.previous_starts_at),
            "previous_ends_at": _stamp(self.previous_ends_at),
        }

    @classmethod
    def from_extra(cls, extra: dict[str, Any]) -> NoticeFacts | None:
        """The facts stored by `to_extra`, or None (not a maintenance notice, or rendered before)."""
        data = extra.get(NOTICE_EXTRA)
        if not isinstance(data, dict) or not isinstance(data.get("phase"), str):
            return None
        try:
            return cls(
                phase=data["phase"],
                starts_at=_parse(data.get("starts_at")),
                ends_at=_parse(data.get("ends_at")),
                previous_starts_at=_parse(data.get("previous_starts_at")),
                previous_ends_at=_parse(data.get("previous_ends_at")),
            )
        except ValueError:
            return None
