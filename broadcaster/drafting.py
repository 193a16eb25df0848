"""Turn what a community manager wrote into every channel's rendering and the linter's findings.

Pure: nothing here touches the database, so `preview` and publication share exactly one path.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from broadcaster.compose import NO_BREAK_SPACE, Composer
from broadcaster.config import Settings
from broadcaster.lint import Draft, Finding, lint
from broadcaster.message import Brand, MessageContext, MessageKind, RenderedMessage
from broadcaster.models import utcnow


class PublishError(Exception):
    """Bad input (unknown component, empty message, wrong status…): nothing was written."""


class LintRefused(PublishError):
    """The crisis linter found errors; publish with `force=True` to override."""

    def __init__(self, findings: Sequence[Finding]) -> None:
        errors = [f for f in findings if f.severity == "error"]
        super().__init__(f"the message has {len(errors)} lint error(s); fix them or use --force")
        self.findings = list(findings)


@dataclass(frozen=True, slots=True)
class UpdateDraft:
    """What the community manager wrote for one update."""

    status: str
    message: str
    translations: dict[str, str] = field(default_factory=dict)
    eta_at: datetime | None = None
    next_update_at: datetime | None = None
    alternative: str | None = None
    compensation: str | None = None
    channels: tuple[str, ...] = ()  # empty: every enabled channel
    author: str = ""
    # Maintenance notices only: the ladder step and the window (see `MessageContext`).
    phase: str = ""
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    previous_starts_at: datetime | None = None
    previous_ends_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Preview:
    renders: dict[str, dict[str, RenderedMessage]]  # channel -> locale -> message
    findings: list[Finding]


@dataclass(frozen=True, slots=True)
class IncidentFacts:
    incident_id: int
    title: str
    impact: str
    components: tuple[str, ...]
    is_first: bool


def enabled_channels(settings: Settings, chosen: Sequence[str] = ()) -> list[str]:
    names = [n for n in ("twitter", "facebook", "telegram", "email", "push", "blog") if _enabled(settings, n)]
    if not chosen:
        return names
    unknown = [c for c in chosen if c not in names]
    if unknown:
        raise PublishError(
            f"unknown or disabled channel(s): {', '.join(unknown)} (enabled: {', '.join(names)})"
        )
    return [n for n in names if n in chosen]


def _enabled(settings: Settings, name: str) -> bool:
    return bool(getattr(settings.channels, name).enabled)


def check_components(settings: Settings, components: Sequence[str]) -> None:
    if not components:
        raise PublishError("name at least one affected component (--component)")
    unknown = [c for c in components if c not in settings.components]
    if unknown:
        known = ", ".join(settings.components)
        raise PublishError(f"unknown component(s): {', '.join(unknown)} (known: {known})")


def draft_messages(settings: Settings, draft: UpdateDraft) -> dict[str, str]:
    if not draft.message.strip():
        raise PublishError("the message is empty: write what customers should know")
    messages = {settings.brand.default_locale: draft.message.strip()}
    for locale, text in draft.translations.items():
        if locale not in settings.brand.locales:
            raise PublishError(
                f"translation for unknown locale {locale!r} (locales: {settings.brand.locales})"
            )
        if text.strip():
            messages[locale] = text.strip()
    return messages


def _context(
    settings: Settings,
    facts: IncidentFacts,
    draft: UpdateDraft,
    kind: MessageKind,
    locale: str,
    messages: dict[str, str],
    published_at: datetime,
) -> MessageContext:
    brand = settings.brand
    alternative = (
        draft.alternative or brand.alternative.get(locale) or brand.alternative.get(brand.default_locale)
    )
    base_url = settings.server.public_base_url.rstrip("/")
    return MessageContext(
        brand=Brand(
            name=brand.name,
            public_url=brand.public_url,
            status_url=settings.status_url,
            timezone=brand.timezone,
        ),
        locale=locale,
        kind=kind,
        incident_id=facts.incident_id,
        title=facts.title,
        impact=facts.impact,
        status=draft.status,
        message=messages.get(locale) or messages[brand.default_locale],
        published_at=published_at,
        components=tuple(settings.component_label(c, locale) for c in facts.components),
        eta_at=draft.eta_at,
        next_update_at=draft.next_update_at,
        alternative=alternative or None,
        compensation=draft.compensation or None,
        is_first_update=facts.is_first,
        incident_url=f"{base_url}/incidents/{facts.incident_id}" if facts.incident_id else "",
        phase=draft.phase,
        starts_at=draft.starts_at,
        ends_at=draft.ends_at,
        previous_starts_at=draft.previous_starts_at,
        previous_ends_at=draft.previous_ends_at,
        duration=duration_words(draft.starts_at, draft.ends_at, locale),
    )


def duration_words(starts_at: datetime | None, ends_at: datetime | None, locale: str) -> str:
    """A window's length as customers read it: "2 h", "2 h 30" (fr), "2 h 30 min" (en), "45 min".

    Its spaces are no-break spaces (U+00A0), like a clock's: "2 h 30" never breaks in two.
    """
    if starts_at is None or ends_at is None or ends_at <= starts_at:
        return ""
    minutes = round((ends_at - starts_at).total_seconds() / 60)
    hours, rest = divmod(minutes, 60)
    if not hours:
        words = f"{rest} min"
    elif not rest:
        words = f"{hours} h"
    elif locale.replace("-", "_").split("_")[0].lower() == "fr":
        words = f"{hours} h {rest:02d}"
    else:
        words = f"{hours} h {rest} min"
    return words.replace(" ", NO_BREAK_SPACE)


def render_update(
    settings: Settings,
    composer: Composer,
    facts: IncidentFacts,
    draft: UpdateDraft,
    kind: MessageKind,
    published_at: datetime,
) -> Preview:
    messages = draft_messages(settings, draft)
    channels = enabled_channels(settings, draft.channels)
    renders: dict[str, dict[str, RenderedMessage]] = {}
    for locale in messages:  # a locale without its own text gets the default locale's message
        context = _context(settings, facts, draft, kind, locale, messages, published_at)
        for channel in channels:
            renders.setdefault(channel, {})[locale] = composer.render(channel, context)
    critical = any(settings.components[c].critical for c in facts.components)
    has_alternative = bool(draft.alternative or settings.brand.alternative)
    findings = lint(
        Draft(
            kind=kind,
            messages=messages,
            is_first_update=facts.is_first,
            has_eta=draft.eta_at is not None,
            has_next_update=draft.next_update_at is not None,
            critical_components_down=critical,
            has_alternative=has_alternative,
            has_compensation=bool(draft.compensation),
            phase=draft.phase,
            has_schedule=draft.starts_at is not None and draft.ends_at is not None,
        ),
        [m for per_locale in renders.values() for m in per_locale.values()],
    )
    return Preview(renders=renders, findings=findings)


def preview(
    settings: Settings,
    composer: Composer,
    *,
    title: str,
    impact: str,
    components: Sequence[str],
    draft: UpdateDraft,
    kind: MessageKind = "update",
    is_first: bool = True,
) -> Preview:
    """Render every channel × locale and lint, without writing anything."""
    check_components(settings, components)
    facts = IncidentFacts(0, title, impact, tuple(components), is_first)
    return render_update(settings, composer, facts, draft, kind, utcnow())
