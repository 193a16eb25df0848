"""Render one update for every channel from `message_templates/<channel>/<locale>/<kind>.<part>.j2`.

Templates see every `MessageContext` field plus `lang` (the template's locale folder),
`status_link` (the incident page, else the status page) and `message_thanks` (the message already
thanks the reader: leave out the template's own thanks); filters `when`, `and_list`,
`sentence`, `lcfirst`, `tg`, `tg_attr`, `html_paragraphs`, `plain`; globals `status_words`, `impact_words`.
Length limits from `CAPABILITIES` are applied after rendering: templates never count characters.

    messages = Composer(settings.templates_dir or None).render_all(context)
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import fields
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jinja2
from babel import Locale, UnknownLocaleError
from babel.dates import format_skeleton, format_time
from babel.lists import format_list
from markdown_it import MarkdownIt
from markupsafe import Markup, escape

from broadcaster.compose.lint import thanks_in
from broadcaster.control_characters import without_controls
from broadcaster.errors import ConfigurationError
from broadcaster.message import NOTICE_EXTRA, MessageContext, NoticeFacts, RenderedMessage
from channels.registry import CHANNEL_NAMES, SPECS

__all__ = ["NO_BREAK_SPACE", "Composer", "TemplateError", "format_when", "impact_words", "status_words"]

_STATUS_WORDS: dict[str, dict[str, str]] = {
    "fr": {
        "investigating": "Nous enquêtons",
        "identified": "Cause identifiée",
        "monitoring": "Correctif en place, nous surveillons",
        "resolved": "Résolu",
        "scheduled": "Maintenance programmée",
        "in_progress": "Maintenance en cours",
        "verifying": "Vérifications en cours",
        "completed": "Maintenance terminée",
        "cancelled": "Maintenance annulée",
    },
    "en": {
        "investigating": "We're investigating",
        "identified": "Cause identified",
        "monitoring": "Fix in place, we're monitoring",
        "resolved": "Resolved",
        "scheduled": "Maintenance scheduled",
        "in_progress": "Maintenance in progress",
        "verifying": "Checking everything works",
        "completed": "Maintenance complete",
        "cancelled": "Maintenance cancelled",
    },
}
_IMPACT_WORDS: dict[str, dict[str, str]] = {
    "fr": {
        "none": "Aucune gêne attendue",
        "minor": "Gêne légère",
        "major": "Forte perturbation",
        "critical": "Service interrompu",
    },
    "en": {
        "none": "No disruption expected",
        "minor": "Minor disruption",
        "major": "Major disruption",
        "critical": "Service down",
    },
}
# Prepositions for `when`: "à 15 h 00" / "vers 14 h 30"; "tomorrow" and "on <date>" per language.
_TIME_WORDS: dict[str, dict[str, str]] = {
    "fr": {"at": "à", "around": "vers", "tomorrow": "demain", "on": "le"},
    "en": {"at": "at", "around": "around", "tomorrow": "tomorrow", "on": "on"},
}
_FALLBACK_LANGUAGE = "en"
_SPACES = str.maketrans({"\u202f": " ", "\u00a0": " "})
#: Inside a clock every space is a no-break space: "17 h 11" never breaks into "17 / h 11".
NO_BREAK_SPACE = "\u00a0"
_CLOCK_SPACES = str.maketrans({" ": NO_BREAK_SPACE, "\u202f": NO_BREAK_SPACE})
_TRAILING_SPACE = re.compile(r"[ \t]+$", re.MULTILINE)
_BLANK_LINES = re.compile(r"\n{3,}")
_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n\s*")


class TemplateError(ConfigurationError):
    """A template could not be rendered (missing variable, missing template, syntax error).

    Raised before anything is sent; `template_name` says which file to fix.
    """

    def __init__(self, template_name: str, detail: str) -> None:
        super().__init__(f"{template_name}: {detail}")
        self.template_name = template_name
        self.detail = detail


def _language(locale: str) -> str:
    return locale.replace("-", "_").split("_")[0].lower()


def _words(table: dict[str, dict[str, str]], locale: str) -> dict[str, str]:
    return table.get(_language(locale)) or table[_FALLBACK_LANGUAGE]


def status_words(status: str, locale: str) -> str:
    """Plain words for an incident or maintenance status: ("identified", "fr") → "Cause identifiée"."""
    words = _words(_STATUS_WORDS, locale)
    if status not in words:
        raise ValueError(f"unknown status {status!r}")
    return words[status]


def impact_words(impact: str, locale: str) -> str:
    """Plain words for an impact level: ("major", "en") → "Major disruption"."""
    words = _words(_IMPACT_WORDS, locale)
    if impact not in words:
        raise ValueError(f"unknown impact {impact!r}")
    return words[impact]


def format_when(dt: datetime, *, timezone: str, locale: str, now: datetime, prep: str = "") -> str:
    """A short, natural time in the brand's zone: "vers 14 h 30", "tomorrow at 9:00 AM".

    The day is added only when `dt` is not on the same day as `now` in that zone. The spaces inside
    the clock ("14 h 30", "9:00 AM") are no-break spaces (U+00A0) on every channel: no line, X thread
    or Telegram split ever breaks a time in two.
    """
    zone = ZoneInfo(timezone)
    local, today = dt.astimezone(zone), now.astimezone(zone).date()
    language = _language(locale)
    words = _words(_TIME_WORDS, locale)
    # French style "14 h 30" (Imprimerie nationale); other languages use their CLDR short time.
    pattern = "H 'h' mm" if language == "fr" else "short"
    clock = format_time(local, pattern, tzinfo=zone, locale=locale).translate(_CLOCK_SPACES)
    timed = f"{words[prep]} {clock}" if prep else clock
    if local.date() == today:
        return timed
    if local.date() == today + timedelta(days=1):
        return f"{words['tomorrow']} {timed}"
    day = format_skeleton("MMMd", local, tzinfo=zone, locale=locale).translate(_SPACES)
    return f"{words['on']} {day} {timed}" if prep else f"{day} {timed}"


def _babel_locale(reader: str, template_locale: str) -> str:
    """The reader's locale when it speaks the template's language (fr_CA for fr), else the template's."""
    candidate = reader if _language(reader) == _language(template_locale) else template_locale
    try:
        return str(Locale.parse(candidate.replace("-", "_")))
    except (UnknownLocaleError, ValueError):
        return _FALLBACK_LANGUAGE


@jinja2.pass_context
def _when_filter(ctx: jinja2.runtime.Context, dt: datetime, prep: str = "") -> str:
    return format_when(
        dt,
        timezone=ctx["brand"].timezone,
        locale=ctx["babel_locale"],
        now=ctx["published_at"],
        prep=prep,
    )


@jinja2.pass_context
def _and_list(ctx: jinja2.runtime.Context, items: Iterable[str]) -> str:
    return format_list(list(items), locale=ctx["babel_locale"])


def _sentence(text: str) -> str:
    """End a CM-written fragment with a full stop unless it already has closing punctuation."""
    text = text.strip()
    return text if not text or text[-1] in ".!?…" else text + "."


def _lcfirst(text: str) -> str:
    return text[:1].lower() + text[1:]


def _tg(text: str) -> str:
    """Escape for Telegram's HTML parse mode: only &, < and > (core.telegram.org/bots/api#html-style)."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _tg_attr(text: str) -> str:
    return _tg(text).replace('"', "&quot;")


def _html_paragraphs(text: str) -> Markup:
    """CM text as escaped HTML paragraphs: blank lines start a paragraph, newlines become <br>."""
    style = "margin:0 0 16px;"
    paragraphs = [p for p in _PARAGRAPH_BREAK.split(text.strip()) if p]
    return Markup("\n").join(
        Markup('<p style="{}">{}</p>').format(style, Markup("<br>\n").join(escape(p).split("\n")))
        for p in paragraphs
    )


def _plain(text: str) -> str:
    """A shared phrase macro's output as plain text, so the HTML template using it escapes it."""
    return str(text)  # a macro called from an HTML template returns Markup it never escaped


def _finalize(value: Any) -> Any:
    # A bare None printed as "None" would reach customers: force templates to guard optional fields.
    if value is None:
        raise jinja2.UndefinedError("a None value was printed; guard it with {% if … %}")
    return value


_WRITTEN_TEXTS = ("title", "message", "alternative", "compensation")
_LABELS = ("components", "added_components", "removed_components", "still_affected")


def _escaped_texts(context: MessageContext, escape: Callable[[str], str]) -> dict[str, Any]:
    texts: dict[str, Any] = {}
    for name in _WRITTEN_TEXTS:
        value = getattr(context, name)
        texts[name] = escape(value) if value else value
    for name in _LABELS:
        texts[name] = tuple(escape(label) for label in getattr(context, name))
    return texts


def _tidy(text: str) -> str:
    return _BLANK_LINES.sub("\n\n", _TRAILING_SPACE.sub("", text)).strip()


class Composer:
    """Renders a `MessageContext` into one `RenderedMessage` per channel, limits applied.

    `templates_dir` is searched before the packaged templates, so a user overrides one file by
    creating it there. Locale fallback: `fr_CA` → `fr` → `default_locale`.
    """

    def __init__(self, templates_dir: Path | str | None = None, default_locale: str = "fr") -> None:
        loaders: list[jinja2.BaseLoader] = []
        if templates_dir:
            loaders.append(jinja2.FileSystemLoader(str(templates_dir)))
        loaders.append(jinja2.PackageLoader("message_templates", "."))
        self.default_locale = default_locale
        self._env = jinja2.Environment(
            loader=jinja2.ChoiceLoader(loaders),
            undefined=jinja2.StrictUndefined,
            autoescape=lambda name: bool(name) and str(name).endswith(".html.j2"),
            keep_trailing_newline=False,
            trim_blocks=True,
            lstrip_blocks=True,
            finalize=_finalize,
        )
        self._env.filters.update(
            when=_when_filter,
            and_list=_and_list,
            sentence=_sentence,
            lcfirst=_lcfirst,
            tg=_tg,
            tg_attr=_tg_attr,
            html_paragraphs=_html_paragraphs,
            plain=_plain,
        )
        self._env.globals.update(status_words=status_words, impact_words=impact_words)
        # commonmark without raw HTML: a CM's "<script>" must reach the blog as text, not markup.
        self._markdown = MarkdownIt("commonmark", {"html": False})

    def locale_chain(self, locale: str) -> list[str]:
        """Locale folders to try, most specific first: "fr-CA" → ["fr_CA", "fr", default]."""
        normalised = locale.replace("-", "_")
        chain: list[str] = []
        for candidate in (normalised, _language(normalised), self.default_locale):
            if candidate and candidate not in chain:
                chain.append(candidate)
        return chain

    def _template(self, channel: str, locale: str, kind: str, part: str) -> tuple[jinja2.Template, str]:
        tried: list[str] = []
        for candidate in self.locale_chain(locale):
            name = f"{channel}/{candidate}/{kind}.{part}.j2"
            tried.append(name)
            try:
                return self._env.get_template(name), candidate
            except jinja2.TemplateNotFound:
                continue
            except jinja2.TemplateSyntaxError as exc:
                raise TemplateError(name, f"line {exc.lineno}: {exc.message}") from exc
        raise TemplateError(tried[0], f"no template (tried {', '.join(tried)})")

    def _render_part(self, channel: str, context: MessageContext, part: str) -> str:
        template, template_locale = self._template(channel, context.locale, context.kind, part)
        variables: dict[str, Any] = {f.name: getattr(context, f.name) for f in fields(context)}
        variables.update(
            lang=template_locale,
            babel_locale=_babel_locale(context.locale, template_locale),
            status_link=context.incident_url or context.brand.status_url,
            message_thanks=thanks_in(context.message),
        )
        # A part another renderer reads as markup (a Hugo/Jekyll folder, WordPress): what people
        # wrote is escaped for it before the template places it.
        escape = SPECS[channel].escaped_parts.get(part)
        if escape is not None:
            variables.update(_escaped_texts(context, escape))
        try:
            return without_controls(_tidy(template.render(variables)))  # stored before they were refused
        except (jinja2.TemplateError, ValueError) as exc:
            raise TemplateError(template.name or part, str(exc)) from exc

    def render(self, channel: str, context: MessageContext) -> RenderedMessage:
        """Render `context` for `channel` and apply its length limits (split or truncate)."""
        if channel not in SPECS:
            raise ValueError(f"unknown channel {channel!r}")
        spec = SPECS[channel]
        texts = {part: self._render_part(channel, context, part) for part in spec.parts}
        fitted = spec.fit(texts, spec.capabilities, self._markdown.render)
        return RenderedMessage(
            channel=channel,
            locale=context.locale,
            kind=context.kind,
            parts=fitted.parts,
            title=fitted.title,
            html=fitted.html,
            extra=_extra(context),
        )

    def render_all(self, context: MessageContext) -> dict[str, RenderedMessage]:
        """Every channel of `CHANNEL_NAMES`, in preview order; raises before returning anything."""
        return {channel: self.render(channel, context) for channel in CHANNEL_NAMES}


def _extra(context: MessageContext) -> dict[str, Any]:
    extra: dict[str, Any] = {"incident_url": context.incident_url or context.brand.status_url}  # a tap
    if context.kind == "maintenance_notice":  # the public page shows each notice once, with its times
        extra[NOTICE_EXTRA] = NoticeFacts.of(context).to_extra()
    return extra
