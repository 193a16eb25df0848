"""The customer's own words in a reply's text: quoted history, attributions and footers removed.

Mail clients lay a reply out in a few shapes, whatever their language:

- an attribution ("On … wrote:", "Am … schrieb …:", "вт, 12 нояб. 2026 г. в 14:02, Shop <…>:"), then
  the history quoted with `>`: the customer may answer above it, below it or between its parts;
- a header block ("From:/Sent:", "Von:/Gesendet:", "От:/Отправлено:" …) or a framed separator
  ("-----Original Message-----", "---- On … wrote ----"), then the history unquoted: cut there;
- a signature after "-- ", a device footer ("Sent from my iPhone") at the end of the text.

Attributions are recognised by their layout (a short line ending with ":" that carries a time or an
address, wrapped over up to three lines), not by a list of languages. Linear in the text's size:
each line is looked at a bounded number of times, and only short lines are matched.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

__all__ = ["strip_quotes"]

_MAX_ATTRIBUTION_LINE = 300  # characters: longer lines are the customer's text, never matched
_ATTRIBUTION_LINES = 3  # Gmail and Apple Mail wrap a long attribution over up to three lines

_TIME = re.compile(r"\b\d{1,2}[:.]\d{2}\b")
_ADDRESS = re.compile(r"<[^<>\s@]+@[^<>\s@]+>|\[mailto:[^\]\s]+\]")  # no "@" inside: no backtracking
# "-----Original Message-----", "---------- Forwarded message ---------", "---- On … wrote ----"
_FRAMED = re.compile(r"-{2,}[^-].*-{2,}")
_SEPARATOR = re.compile(r"[_\-=]{10,}")
# The first two fields of a quoted header block, in the languages of Outlook, Gmail and Apple Mail.
_HEADER_FROM = re.compile(r"\*?(From|De|Von|Da|Fra|Från|Van|Od|От|От кого|Lähettäjä)\s*:\*?\s", re.I)
_HEADER_SENT = re.compile(
    r"\*?(Sent|Date|Envoyé|Gesendet|Datum|Inviato|Data|Enviado|Enviada|Fecha|Sendt|Skickat|Verzonden"
    r"|Wysłano|Отправлено|Дата|Lähetetty|Päivämäärä)\s*:\*?\s",
    re.IGNORECASE,
)
# A device footer: one of these phrases, then a few words (the device), maybe a link; nothing else.
# "Sent from my desk, because…" is a sentence, not a footer: the comma makes it one.
_FOOTER = re.compile(
    r"(Sent from( my)?|Get Outlook for|Envoyé (de|depuis) mon|Envoyé à partir de|Obtenir Outlook pour"
    r"|Von meinem|Gesendet von( meinem)?|Inviato da( mio| il mio)?|Enviado (desde|do|de) (mi|meu|o meu)"
    r"|Obtener Outlook para|Obter o Outlook para|Отправлено (с|из)( моего)?|Lähetetty|Hanki Outlook"
    r"|Sendt fra( min)?|Hent Outlook til)"
    r"( [\w.-]+){1,5}\.?( ?<[^<>\s]+>)?",
    re.IGNORECASE,
)


def strip_quotes(text: str) -> str:
    """Keep only the customer's text: no quoted lines, attribution, history, signature or footer.

    >>> strip_quotes("Toujours en panne ?\\n\\nLe 12 nov. 2026 à 14:02, Shop a écrit :\\n> Incident")
    'Toujours en panne ?'
    >>> strip_quotes("On 12/11/2026 14:02, Shop wrote:\\n> Incident\\n\\nStill down here.")
    'Still down here.'
    """
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    kept: list[str] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        if _quoted(line):
            _end_run(kept)
            index += 1
            continue
        span, attribution = _attribution_at(lines, index)
        following = _next_text(lines, index + span) if span else None
        if span and following is not None and _quoted(lines[following]):
            _end_run(kept)
            index += span
            continue
        if span and _ADDRESS.search(attribution):
            break  # the history follows unquoted (Yahoo, Zoho), or nothing does: the rest is not theirs
        if span and following is None and _TIME.search(attribution):
            break
        if _starts_history(lines, index):
            break
        if line.strip() == "--":  # "-- " is the signature delimiter (RFC 3676 §4.3); often stripped
            index = _after_signature(lines, index)
            _end_run(kept)
            continue
        kept.append(line)
        index += 1
    _end_run(kept)
    return "\n".join(_squeeze_blank(kept)).strip()


def _quoted(line: str) -> bool:
    return line.lstrip().startswith(">")


def _attribution_at(lines: Sequence[str], index: int) -> tuple[int, str]:
    """How many lines from `index` may be an attribution ("On … wrote:" and the like), and their text.

    (0, "") when none. What follows decides: quoted lines, or an address in it for an unquoted history.
    """
    first = lines[index].strip()
    if not first or len(first) > _MAX_ATTRIBUTION_LINE or first[-1] in ".!?":
        return 0, ""
    joined = first
    for span in range(1, _ATTRIBUTION_LINES + 1):
        if span > 1:
            extra = lines[index + span - 1].strip() if index + span - 1 < len(lines) else ""
            if not extra or len(extra) > _MAX_ATTRIBUTION_LINE or _quoted(extra):
                return 0, ""
            joined = f"{joined}{'' if joined.endswith('<') else ' '}{extra}"
        if _may_be_attribution(joined):
            return span, joined
    return 0, ""


def _may_be_attribution(line: str) -> bool:
    """Ends like one (":", or framed by dashes as Zoho's) and carries a date: a digit at least."""
    framed = line.startswith("--") and line.endswith("--") and _FRAMED.fullmatch(line) is not None
    return (line.endswith(":") or framed) and any(c.isdigit() for c in line)


def _starts_history(lines: Sequence[str], index: int) -> bool:
    """Whether an unquoted history starts at `index`: a framed separator or a header block."""
    line = lines[index].strip()
    if len(line) > _MAX_ATTRIBUTION_LINE:
        return False
    if line.startswith("--") and _FRAMED.fullmatch(line) and not _SEPARATOR.fullmatch(line):
        return True
    if _HEADER_FROM.match(line):
        following = [candidate.strip() for candidate in lines[index + 1 : index + 4] if candidate.strip()]
        return any(_HEADER_SENT.match(candidate) for candidate in following)
    return False


def _next_text(lines: Sequence[str], index: int) -> int | None:
    """The index of the first non-blank line from `index`, or None."""
    return next((i for i in range(index, len(lines)) if lines[i].strip()), None)


def _after_signature(lines: Sequence[str], index: int) -> int:
    """The first line after a signature starting at `index`: the next quote or attribution, or the end."""
    index += 1
    while index < len(lines) and not _quoted(lines[index]) and not _attribution_at(lines, index)[0]:
        index += 1
    return index


def _end_run(kept: list[str]) -> None:
    """The customer's text paused (a quote, an attribution…): drop what ends it but is no text."""
    while kept and not kept[-1].strip():
        kept.pop()
    while kept and _closes_text(kept[-1].strip()):
        kept.pop()
        while kept and not kept[-1].strip():
            kept.pop()


def _closes_text(line: str) -> bool:
    """A rule or a device footer, which end a run of text without being the customer's words."""
    if len(line) > _MAX_ATTRIBUTION_LINE:
        return False
    return _SEPARATOR.fullmatch(line) is not None or _FOOTER.fullmatch(line) is not None


def _squeeze_blank(lines: Iterable[str]) -> list[str]:
    """At most one blank line in a row, none first."""
    out: list[str] = []
    for line in lines:
        if line.strip() or (out and out[-1].strip()):
            out.append(line if line.strip() else "")
    return out
