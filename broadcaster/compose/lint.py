"""The crisis linter (DESIGN §5): tone, completeness, length and consistency checks before publishing.

It reads the community manager's words per locale (a `Draft`) and, optionally, the rendered
channel messages, and returns `Finding`s the composer shows next to the preview. Matching is
case- and accent-insensitive ("desole" is an apology, "VOTRE CONNEXION" is blame) and respects
word boundaries. The phrase lists live in `broadcaster.compose.lint_rules`.

    findings = lint(Draft(kind="update", messages={"fr": text}, has_eta=True, has_next_update=True))
    if has_errors(findings): ...  # refuse to publish without an explicit override
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from broadcaster.compose import lint_rules as rules
from broadcaster.compose.lint_rules import Fact, facts
from broadcaster.folding import Folded, fold
from broadcaster.message import MessageKind, RenderedMessage
from channels.base import Overflow
from channels.registry import CAPABILITIES

__all__ = ["RULES", "Draft", "Finding", "has_errors", "lint", "thanks_in"]

Severity = Literal["error", "warning"]

#: Every rule, in the order findings are reported.
RULES: tuple[str, ...] = (
    "blame",
    "jargon",
    "over-promise",
    "minimising",
    "no-apology",
    "no-eta",
    "no-next-update",
    "no-alternative",
    "no-thanks",
    "no-when",
    "empty",
    "over-length",
    "facts-differ",
)

ELLIPSIS = "…"
#: Readers drop off long X threads; past this many posts the message should be shortened.
MAX_THREAD_PARTS = 4
MIN_VISIBLE_CHARS = 10


@dataclass(frozen=True, slots=True)
class Draft:
    """What the community manager is about to publish: text per locale plus what the update sets."""

    kind: MessageKind
    messages: Mapping[str, str]  # locale -> the community manager's text ("fr", "en", "fr_CA"...)
    is_first_update: bool = False
    has_eta: bool = False
    has_next_update: bool = False
    critical_components_down: bool = False  # checkout / payment affected
    has_alternative: bool = False
    has_compensation: bool = False
    phase: str = ""  # maintenance notices: a phase of `broadcaster.publishing.maintenance.PHASES`
    has_schedule: bool = False  # maintenance notices: the window's start and end are known
    message_optional: bool = False  # a follow-up may say only what changed (status, impact, times…)

    def __post_init__(self) -> None:
        # postmortem: tone and length rules only; maintenance_notice: no outage rules (apology, ETA)
        if self.kind not in ("update", "resolved", "postmortem", "maintenance_notice"):
            raise ValueError(f"unknown message kind {self.kind!r}")

    @property
    def is_over(self) -> bool:
        """What it tells is over (a resolution, a report, a maintenance completed or cancelled)."""
        return self.kind in ("resolved", "postmortem") or self.phase in ("completed", "cancelled")


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem: which rule, how serious, a one-line English fix quoting the offending words."""

    rule: str
    severity: Severity
    message: str
    locale: str = ""  # which message variant, if any
    channel: str = ""  # which rendered channel, for over-length
    excerpt: str = ""  # the matched words, as written


def has_errors(findings: Iterable[Finding]) -> bool:
    """True when any finding is an error (publishing should then need an explicit override)."""
    return any(f.severity == "error" for f in findings)


def thanks_in(text: str) -> bool:
    """Whether `text` already thanks its reader, in French or English (the no-thanks rule's words).

    Templates use it to leave out their own closing thanks: "Merci pour votre patience" once.

    >>> thanks_in("Le paiement fonctionne de nouveau. Merci pour votre patience.")
    True
    """
    return bool(_hits(fold(text), _THANKS))


def lint(draft: Draft, rendered: Iterable[RenderedMessage] = ()) -> list[Finding]:
    """Check a draft (and its rendered channel messages) against the crisis-communication rules.

    Findings come ordered by `RULES`, then locale, then channel, then position in the text.
    """
    found: list[Finding] = []
    folded: dict[str, Folded] = {}
    if not draft.messages and not draft.message_optional:
        found.append(Finding("empty", "error", "The draft has no message: write the update in one language."))
    for locale in sorted(draft.messages):
        text = draft.messages[locale]
        if _visible_chars(text) < MIN_VISIBLE_CHARS:
            found.append(_empty(locale, text))
            continue  # other text checks on an empty message would only add noise
        folded[locale] = fold(text)
        found.extend(_text_findings(draft, locale, folded[locale]))
    if draft.kind == "update" and not draft.has_eta:
        found.append(
            Finding(
                "no-eta",
                "warning",
                'No estimated time: say when you expect the service back, even as a range ("around 3 PM").',
            )
        )
    if draft.kind == "update" and not draft.has_next_update:
        found.append(
            Finding(
                "no-next-update",
                "warning",
                "No next-update time: promise when the next update will come, and keep that promise.",
            )
        )
    if draft.kind == "maintenance_notice" and draft.phase != "completed" and not draft.has_schedule:
        found.append(
            Finding(
                "no-when",
                "error",
                "A maintenance notice must say when: give the start and the end of the window.",
            )
        )
    found.extend(_over_length(draft, rendered))
    found.extend(_facts_differ(folded))
    order = {rule: i for i, rule in enumerate(RULES)}
    return sorted(found, key=lambda f: (order[f.rule], f.locale, f.channel))


# --- phrase matching ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Compiled:
    regex: re.Pattern[str]
    advice: str
    unless: re.Pattern[str] | None


@dataclass(frozen=True, slots=True)
class _Hit:
    start: int
    end: int
    excerpt: str
    advice: str


def _compile(phrases: Iterable[rules.Phrase]) -> tuple[_Compiled, ...]:
    return tuple(
        _Compiled(
            re.compile(rf"(?<!\w)(?:{p.pattern})(?!\w)"),
            p.advice,
            re.compile(p.unless) if p.unless else None,
        )
        for p in phrases
    )


_BLAME = _compile(rules.BLAME)
_JARGON = _compile(rules.JARGON)
_OVER_PROMISE = _compile(rules.OVER_PROMISE)
_MINIMISING = _compile(rules.MINIMISING)
_APOLOGY = _compile(rules.APOLOGY)
_THANKS = _compile(rules.THANKS)
_ALTERNATIVE = _compile(rules.ALTERNATIVE)

# (rule, severity, phrases, (what is wrong, how to fix it; empty: the phrase's own advice)).
_PHRASE_RULES: tuple[tuple[str, Severity, tuple[_Compiled, ...], tuple[str, str]], ...] = (
    (
        "blame",
        "error",
        _BLAME,
        ("Blames the customer", ". Say what went wrong on our side; never make customers responsible."),
    ),
    ("jargon", "warning", _JARGON, ("Jargon", "")),
    (
        "over-promise",
        "error",
        _OVER_PROMISE,
        ("Promises what nobody can guarantee", '. Give an estimate instead ("we expect…", "around…").'),
    ),
    (
        "minimising",
        "error",
        _MINIMISING,
        ("Minimises the outage", ". Describe the impact as customers feel it, without playing it down."),
    ),
)


def _hits(folded: Folded, phrases: tuple[_Compiled, ...]) -> list[_Hit]:
    """Non-overlapping matches in text order; of two overlapping ones the earlier, longer wins."""
    candidates: list[_Hit] = []
    for phrase in phrases:
        for m in phrase.regex.finditer(folded.text):
            excerpt = folded.quote(m.start(), m.end())
            if phrase.unless is not None and phrase.unless.fullmatch(excerpt):
                continue
            candidates.append(_Hit(m.start(), m.end(), excerpt, phrase.advice))
    candidates.sort(key=lambda h: (h.start, h.start - h.end))
    kept: list[_Hit] = []
    seen: set[str] = set()
    for hit in candidates:
        if kept and hit.start < kept[-1].end:
            continue
        kept.append(hit)
    # One finding per distinct wording: "serveur" twice is one fix.
    unique = []
    for hit in kept:
        key = fold(hit.excerpt).text
        if key not in seen:
            seen.add(key)
            unique.append(hit)
    return unique


# --- rules ----------------------------------------------------------------------------------------


def _text_findings(draft: Draft, locale: str, folded: Folded) -> list[Finding]:
    out: list[Finding] = []
    for rule, severity, phrases, explain in _PHRASE_RULES:
        for hit in _hits(folded, phrases):
            message = f'{explain[0]}: "{hit.excerpt}"{explain[1] or "; " + hit.advice + "."}'
            out.append(Finding(rule, severity, message, locale=locale, excerpt=hit.excerpt))
    # An apology belongs to an outage's first update, not to a maintenance announced in advance.
    if draft.is_first_update and draft.kind == "update" and not _hits(folded, _APOLOGY):
        out.append(
            Finding(
                "no-apology",
                "warning",
                f'The first update in "{locale}" does not apologise: add one '
                '("Nous sommes désolés…" / "We are sorry…").',
                locale=locale,
            )
        )
    if (
        not draft.is_over  # resolved, reported, completed or cancelled: no alternative is needed any more
        and draft.critical_components_down
        and not draft.has_alternative
        and not _hits(folded, _ALTERNATIVE)
    ):
        out.append(
            Finding(
                "no-alternative",
                "warning",
                f"Checkout or payment is down: tell customers how they can still order (phone, marketplace…) "
                f'in "{locale}".',
                locale=locale,
            )
        )
    if draft.kind == "resolved" and not _hits(folded, _THANKS):
        out.append(
            Finding(
                "no-thanks",
                "warning",
                f'The resolution in "{locale}" does not thank customers: end with '
                '"Merci pour votre patience" / "Thank you for your patience".',
                locale=locale,
            )
        )
    return out


def _visible_chars(text: str) -> int:
    return sum(1 for c in text if not c.isspace() and not unicodedata.category(c).startswith("C"))


def _empty(locale: str, text: str) -> Finding:
    shown = " ".join(text.split())
    if not shown:
        message = f'The "{locale}" message is empty: write the update or drop this language.'
    else:
        message = f'The "{locale}" message is too short ("{shown}"): write at least one full sentence.'
    return Finding("empty", "error", message, locale=locale, excerpt=shown)


def _over_length(draft: Draft, rendered: Iterable[RenderedMessage]) -> list[Finding]:
    out: list[Finding] = []
    for msg in rendered:
        caps = CAPABILITIES.get(msg.channel)
        if caps is None:
            continue
        where = f"{msg.channel} ({msg.locale})"
        if msg.channel == "twitter" and len(msg.parts) > MAX_THREAD_PARTS:
            out.append(
                Finding(
                    "over-length",
                    "warning",
                    f"{where}: the thread has {len(msg.parts)} posts; past {MAX_THREAD_PARTS} readers drop "
                    "off, shorten the message.",
                    locale=msg.locale,
                    channel=msg.channel,
                )
            )
        if caps.overflow is not Overflow.TRUNCATE:
            continue
        body = msg.text.rstrip()
        if caps.max_body and _was_cut(body, draft.messages.get(msg.locale, "")):
            tail = _tail(body[: -len(ELLIPSIS)])
            out.append(
                Finding(
                    "over-length",
                    "warning",
                    f'{where}: the body was cut at {caps.max_body} characters after "{tail}"; shorten the '
                    "message so its end is not lost.",
                    locale=msg.locale,
                    channel=msg.channel,
                    excerpt=tail,
                )
            )
        title = " ".join(msg.title.split())
        if caps.max_title and title.endswith(ELLIPSIS):
            out.append(
                Finding(
                    "over-length",
                    "warning",
                    f'{where}: the title was cut at {caps.max_title} characters ("{title}"); use a shorter '
                    "title.",
                    locale=msg.locale,
                    channel=msg.channel,
                    excerpt=title,
                )
            )
    return out


def _was_cut(body: str, own: str) -> bool:
    """The body ends with an ellipsis that the community manager did not write themselves."""
    if not body.endswith(ELLIPSIS):
        return False
    own = own.rstrip()
    return not (own.endswith(ELLIPSIS) and body.endswith(own[-20:]))


def _tail(text: str, width: int = 40) -> str:
    text = " ".join(text.split())
    if len(text) <= width:
        return text
    tail = text[-width:]
    return tail.split(" ", 1)[1] if " " in tail else tail


def _facts_differ(texts: Mapping[str, Folded]) -> list[Finding]:
    """Compare every pair of variants: a fact of one must have an equivalent in the other."""
    per_locale = {loc: facts(folded, loc) for loc, folded in texts.items()}
    locales = sorted(per_locale)
    out: list[Finding] = []
    for i, first in enumerate(locales):
        for second in locales[i + 1 :]:
            only_first = _unmatched(per_locale[first], per_locale[second])
            only_second = _unmatched(per_locale[second], per_locale[first])
            if not only_first and not only_second:
                continue
            out.append(
                Finding(
                    "facts-differ",
                    "warning",
                    f'Facts differ between "{first}" and "{second}": {first} has {_listed(only_first)}, '
                    f"{second} has {_listed(only_second)}; give the same times, numbers and phone numbers "
                    "in every language.",
                    locale=second,
                    excerpt=", ".join(only_first + only_second),
                )
            )
    return out


def _unmatched(mine: list[Fact], theirs: list[Fact]) -> list[str]:
    missing: list[str] = []
    for fact in mine:
        if not any(fact.keys & other.keys for other in theirs) and fact.excerpt not in missing:
            missing.append(fact.excerpt)
    return missing


def _listed(excerpts: list[str]) -> str:
    return ", ".join(f'"{e}"' for e in excerpts) if excerpts else "nothing else"
