"""Turn what a community manager wrote into every channel's rendering and the linter's findings.

Pure: nothing here touches the database, so `preview` and publication share exactly one path.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from broadcaster.compose.lint import Draft, Finding, lint
from broadcaster.compose.render import NO_BREAK_SPACE, Composer
from broadcaster.config import Settings
from broadcaster.control_characters import control_character
from broadcaster.errors import InvalidInput
from broadcaster.message import Brand, MessageContext, MessageKind, RenderedMessage
from broadcaster.models import utcnow
from channels.registry import CHANNEL_NAMES

__all__ = [
    "Fallback",
    "IncidentFacts",
    "LintRefused",
    "Preview",
    "PublishError",
    "TRANSLATION_OPTIONS",
    "UpdateDraft",
    "check_components",
    "draft_messages",
    "duration_words",
    "enabled_channels",
    "fallbacks",
    "localized",
    "localized_titles",
    "preview",
    "render_update",
    "rendered_locales",
    "untranslated_texts",
]


class PublishError(InvalidInput):
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
    # The alternative and the compensation in other locales (`alternative`/`compensation` are
    # in the brand's default locale), as `translations` is for the message.
    alternative_translations: dict[str, str] = field(default_factory=dict)
    compensation_translations: dict[str, str] = field(default_factory=dict)
    channels: tuple[str, ...] = ()  # empty: every enabled channel
    author: str = ""
    force_reason: str = ""  # why it was published past the linter's errors (the audit log keeps it)
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
    #: locale -> the texts its readers get in the brand's default locale ("message", "title"…)
    untranslated: dict[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Fallback:
    """`readers` subscribers of `locale` will read `missing` texts in the brand's default locale."""

    locale: str
    readers: int
    missing: tuple[str, ...]


#: The option that gives each text in another locale.
TRANSLATION_OPTIONS = {
    "message": "--translation",
    "title": "--title-translation",
    "alternative": "--alternative-translation",
    "compensation": "--compensation-translation",
}


def fallbacks(untranslated: Mapping[str, tuple[str, ...]], readers: Mapping[str, int]) -> list[Fallback]:
    """Who will read which texts in the fallback language, from the readers per locale."""
    return [
        Fallback(locale, readers[locale], missing)
        for locale, missing in untranslated.items()
        if missing and readers.get(locale)
    ]


@dataclass(frozen=True, slots=True)
class IncidentFacts:
    """What an update says about its incident, beyond what the community manager wrote.

    `titles`: the title per locale (the default locale's is `title`). A follow-up that changed
    the incident says what changed: `previous_impact` (empty: unchanged), `added` and `removed`
    components. A resolution names the components something else open still affects
    (`still_affected`), so it never says they work again.
    """

    incident_id: int
    title: str
    impact: str
    components: tuple[str, ...]
    is_first: bool
    titles: Mapping[str, str] = field(default_factory=dict)
    previous_impact: str = ""
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    still_affected: tuple[str, ...] = ()

    def title_in(self, locale: str) -> str:
        return self.titles.get(locale) or self.title


def enabled_channels(settings: Settings, chosen: Sequence[str] = ()) -> list[str]:
    names = [n for n in CHANNEL_NAMES if _enabled(settings, n)]
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


def localized(
    settings: Settings,
    text: str | None,
    translations: Mapping[str, str],
    option: str,
    *,
    text_option: str = "",
    single_line: bool = False,
) -> dict[str, str]:
    """A text per locale: `text` in the brand's default locale, `translations` in others.

    Blank texts are left out; a translation into a locale the brand does not publish in is an
    error naming `option` (e.g. "--title-translation"). A control character (any, when
    `single_line`) is an error naming the option (`text_option` for `text`) and its position.
    """
    _refuse_controls(text or "", text_option or option, single_line)
    texts = {settings.brand.default_locale: text.strip()} if text and text.strip() else {}
    for locale, translated in translations.items():
        if locale not in settings.brand.locales:
            locales = ", ".join(settings.brand.locales)
            raise PublishError(f"{option}: unknown locale {locale!r} (locales: {locales})")
        _refuse_controls(translated, f"{option} {locale}", single_line)
        if translated.strip():
            texts[locale] = translated.strip()
    if texts and settings.brand.default_locale not in texts:
        raise PublishError(
            f"{option} gives other locales but no text in {settings.brand.default_locale!r}, "
            "the brand's default locale, which every reader falls back to"
        )
    return texts


def localized_titles(settings: Settings, title: str, translations: Mapping[str, str]) -> dict[str, str]:
    """The title per locale, as `localized` gives it; a title is one line without control characters."""
    return localized(
        settings, title, translations, "--title-translation", text_option="--title", single_line=True
    )


def _refuse_controls(text: str, option: str, single_line: bool) -> None:
    problem = control_character(text, single_line=single_line)
    if problem:
        raise PublishError(f"{option}: {problem}")


def draft_messages(settings: Settings, draft: UpdateDraft, *, may_be_empty: bool = False) -> dict[str, str]:
    """The message per locale; empty only when `may_be_empty` (a follow-up that changes facts)."""
    messages = localized(
        settings, draft.message, draft.translations, "--translation", text_option="--message"
    )
    if not messages and not may_be_empty:
        raise PublishError("the message is empty: write what customers should know")
    return messages


def _in(texts: Mapping[str, str], locale: str, default_locale: str) -> str | None:
    return texts.get(locale) or texts.get(default_locale) or None


def _context(
    settings: Settings,
    facts: IncidentFacts,
    draft: UpdateDraft,
    kind: MessageKind,
    locale: str,
    messages: dict[str, str],
    texts: tuple[dict[str, str], dict[str, str]],
    published_at: datetime,
) -> MessageContext:
    """One locale's context; `texts`: the alternative and the compensation per locale."""
    brand = settings.brand
    default = brand.default_locale
    alternatives, compensations = texts
    alternative = _in(alternatives, locale, default) or _in(brand.alternative, locale, default)

    def labels(names: Sequence[str]) -> tuple[str, ...]:
        return tuple(settings.component_label(c, locale) for c in names)

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
        title=facts.title_in(locale),
        impact=facts.impact,
        status=draft.status,
        message=messages.get(locale) or messages.get(default, ""),
        published_at=published_at,
        components=labels(facts.components),
        eta_at=draft.eta_at,
        next_update_at=draft.next_update_at,
        alternative=alternative,
        compensation=_in(compensations, locale, default),
        previous_impact=facts.previous_impact,
        added_components=labels(facts.added),
        removed_components=labels(facts.removed),
        still_affected=labels(facts.still_affected),
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


def untranslated_texts(
    settings: Settings,
    facts: IncidentFacts,
    draft: UpdateDraft,
    kind: MessageKind,
    messages: Mapping[str, str],
) -> dict[str, tuple[str, ...]]:
    """For each locale but the default, the texts of this update it has no translation of."""
    result: dict[str, tuple[str, ...]] = {}
    for locale in settings.brand.locales:
        if locale == settings.brand.default_locale:
            continue
        has_own = {
            "message": not messages or locale in messages,
            "title": locale in facts.titles,
            "alternative": kind not in ("update", "maintenance_notice")
            or _has_own_alternative(settings, draft, locale),
            "compensation": not draft.compensation or locale in draft.compensation_translations,
        }
        result[locale] = tuple(name for name, own in has_own.items() if not own)
    return result


def _has_own_alternative(settings: Settings, draft: UpdateDraft, locale: str) -> bool:
    if draft.alternative:
        return locale in draft.alternative_translations
    return locale in settings.brand.alternative or not settings.brand.alternative


def rendered_locales(
    settings: Settings, facts: IncidentFacts, draft: UpdateDraft, messages: Mapping[str, str]
) -> list[str]:
    """The default locale and every locale with a text of its own, in the brand's order; every
    locale when the update has no message (the templates' words are all it says)."""
    own = {*messages, *facts.titles, *draft.alternative_translations, *draft.compensation_translations}
    default = settings.brand.default_locale
    others = [loc for loc in settings.brand.locales if loc != default and (loc in own or not messages)]
    return [default, *others]


def render_update(
    settings: Settings,
    composer: Composer,
    facts: IncidentFacts,
    draft: UpdateDraft,
    kind: MessageKind,
    published_at: datetime,
) -> Preview:
    follow_up = kind == "update" and not facts.is_first
    messages = draft_messages(settings, draft, may_be_empty=follow_up)
    channels = enabled_channels(settings, draft.channels)
    renders: dict[str, dict[str, RenderedMessage]] = {}
    texts = (  # per locale, checked once for the whole update
        localized(settings, draft.alternative, draft.alternative_translations, "--alternative"),
        localized(settings, draft.compensation, draft.compensation_translations, "--compensation"),
    )
    # A locale without its own text gets the default locale's rendering (`fallback_readers` counts them).
    for locale in rendered_locales(settings, facts, draft, messages):
        context = _context(settings, facts, draft, kind, locale, messages, texts, published_at)
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
            message_optional=follow_up,
            phase=draft.phase,
            has_schedule=draft.starts_at is not None and draft.ends_at is not None,
        ),
        [m for per_locale in renders.values() for m in per_locale.values()],
    )
    untranslated = untranslated_texts(settings, facts, draft, kind, messages)
    return Preview(renders=renders, findings=findings, untranslated=untranslated)


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
    title_translations: Mapping[str, str] | None = None,
) -> Preview:
    """Render every channel × locale and lint, without writing anything."""
    check_components(settings, components)
    titles = localized_titles(settings, title, title_translations or {})
    facts = IncidentFacts(0, title, impact, tuple(components), is_first, titles=titles)
    return render_update(settings, composer, facts, draft, kind, utcnow())
