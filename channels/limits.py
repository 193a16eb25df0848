"""Length limits as pure text functions: X weighted length and threads, Telegram splits, truncation.

Everything here is deterministic and I/O free; compose applies it after rendering, the linter and
the preview read the same numbers.

>>> x_weighted_length("Paiement rétabli ✅ https://status.shop.example/incidents/42")
43
"""

from __future__ import annotations

import functools
import html
import re
import unicodedata
from collections.abc import Callable, Iterator

__all__ = [
    "fit_subject",
    "split_plain_text",
    "split_text",
    "split_x_thread",
    "truncate_at_word",
    "visible_length",
    "x_weighted_length",
]

# twitter-text v3 configuration (github.com/twitter/twitter-text, config/v3.json): these ranges
# weigh 1, everything else 2; a URL always counts transformedURLLength = 23.
_X_LIGHT_RANGES: tuple[tuple[int, int], ...] = ((0, 4351), (8192, 8205), (8208, 8223), (8242, 8247))
_X_URL_WEIGHT = 23

# URLs stop at whitespace, quotes and angle brackets; trailing punctuation belongs to the sentence.
_URL = r"https?://[^\s<>\"']*[^\s<>\"'.,;:!?)\]}…]"
# v3 counts a whole emoji sequence (ZWJ families, skin tones, flags, keycaps) as one weight-2 unit.
_EMOJI_MOD = "[\ufe0f\U0001f3fb-\U0001f3ff]?"
_EMOJI_BASE = "[\u2194-\u21aa\u231a-\u23ff\u25aa-\u27bf\u2934\u2935\u2b05-\u2b55\U0001f000-\U0001faff]"
_EMOJI = (
    r"[\U0001f1e6-\U0001f1ff]{2}"
    r"|[0-9#*]\ufe0f?\u20e3"
    r"|[\u00a9\u00ae\u203c\u2049\u2122\u2139\u3030\u303d\u3297\u3299]\ufe0f"
    rf"|{_EMOJI_BASE}{_EMOJI_MOD}(?:\u200d{_EMOJI_BASE}{_EMOJI_MOD})*"
)
_X_TOKEN = re.compile(rf"(?P<url>{_URL})|(?P<emoji>{_EMOJI})|.", re.DOTALL)

# Telegram HTML: a tag and an entity are atomic; a stray "<" is one visible character.
_TG_TOKEN = re.compile(r"(?P<tag><[^<>]*>)|(?P<entity>&(?:#\d+|#x[0-9a-fA-F]+|[a-zA-Z]+);)|.", re.DOTALL)
# A line may break at any whitespace but a no-break space (U+00A0, U+2007, U+202F: "14 h 30").
_BREAK = r"[^\S\u00a0\u2007\u202f]"
_TG_WORD_TOKEN = re.compile(rf"<[^<>]*>|{_BREAK}+|(?:(?!{_BREAK})[^<])+|<")
_TAG_NAME = re.compile(r"<\s*(/?)\s*([a-zA-Z][a-zA-Z0-9-]*)")

_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n\s*")
_LINE_BREAK = re.compile(r"[ \t]*\n\s*")
_SENTENCE_BREAK = re.compile(r"(?<=[.!?…])[ \t]+|[ \t]*\n\s*")
_WORD_BREAK = re.compile(rf"{_BREAK}+")

_Measure = Callable[[str], int]
_Splitter = Callable[[str], list[tuple[str, str]]]


def _x_char_weight(char: str) -> int:
    code = ord(char)
    return 1 if any(low <= code <= high for low, high in _X_LIGHT_RANGES) else 2


def _x_tokens(text: str) -> Iterator[tuple[str, int]]:
    for match in _X_TOKEN.finditer(text):
        token = match.group()
        if match.group("url"):
            yield token, _X_URL_WEIGHT
        elif match.group("emoji"):
            yield token, 2
        else:
            yield token, _x_char_weight(token)


def x_weighted_length(text: str) -> int:
    """Length of `text` as X counts it (twitter-text v3): URLs 23, emoji and CJK 2, Latin 1."""
    return sum(weight for _, weight in _x_tokens(unicodedata.normalize("NFC", text)))


def _tg_tokens(html: str) -> Iterator[tuple[str, int]]:
    for match in _TG_TOKEN.finditer(html):
        token = match.group()
        if match.group("tag"):
            yield token, 0
        elif match.group("entity"):
            yield token, 1
        else:
            # Telegram counts UTF-16 code units: a character outside the BMP counts 2.
            yield token, 2 if ord(token) > 0xFFFF else 1


def visible_length(html: str) -> int:
    """Length of Telegram HTML once parsed: tags count 0, an entity 1, in UTF-16 code units."""
    return sum(weight for _, weight in _tg_tokens(html))


def _split_on(pattern: re.Pattern[str], separator: Callable[[str], str]) -> _Splitter:
    """A splitter returning (separator before, piece) pairs; separators are normalised."""

    def split(text: str) -> list[tuple[str, str]]:
        pieces: list[tuple[str, str]] = []
        start, sep = 0, ""
        for match in pattern.finditer(text):
            if match.start() > start:
                pieces.append((sep, text[start : match.start()]))
                sep = separator(match.group())
            start = match.end()
        if start < len(text):
            pieces.append((sep, text[start:]))
        return pieces

    return split


def _newline_or_space(raw: str) -> str:
    return "\n" if "\n" in raw else " "


def _split_html_words(text: str) -> list[tuple[str, str]]:
    """Split Telegram HTML at whitespace outside tags (`<a href="…">` keeps its inner space)."""
    pieces: list[tuple[str, str]] = []
    current, sep, pending = "", "", ""
    for match in _TG_WORD_TOKEN.finditer(text):
        token = match.group()
        if _WORD_BREAK.fullmatch(token):
            if current:
                pieces.append((sep, current))
                current, sep = "", ""
            pending = _newline_or_space(token)
        else:
            if not current and pieces:
                sep = pending
            current += token
    if current:
        pieces.append((sep, current))
    return pieces


def _hard_cut(text: str, budget: int, tokens: Callable[[str], Iterator[tuple[str, int]]]) -> list[str]:
    """Cut a single over-long word between atomic tokens (a URL, an emoji, a tag, an entity)."""
    chunks: list[str] = []
    current, weight = "", 0
    for token, token_weight in tokens(text):
        if current and weight + token_weight > budget:
            chunks.append(current)
            current, weight = "", 0
        current += token
        weight += token_weight
    if current:
        chunks.append(current)
    return chunks


def _atoms(
    text: str,
    sep: str,
    budget: int,
    measure: _Measure,
    levels: tuple[_Splitter, ...],
    cut: Callable[[str], list[str]],
) -> Iterator[tuple[str, str, int]]:
    """Yield (separator, piece, weight): whole units when they fit, else the next level's pieces."""
    weight = measure(text)
    if weight <= budget:
        yield sep, text, weight
        return
    if not levels:
        for index, chunk in enumerate(cut(text)):
            yield (sep if index == 0 else ""), chunk, measure(chunk)
        return
    for index, (inner_sep, piece) in enumerate(levels[0](text)):
        yield from _atoms(piece, sep if index == 0 else inner_sep, budget, measure, levels[1:], cut)


def _pack(
    text: str,
    budget: int,
    measure: _Measure,
    levels: tuple[_Splitter, ...],
    cut: Callable[[str], list[str]],
) -> list[str]:
    """Greedy packing: a unit that fits alone but not in the current part starts the next one."""
    parts: list[str] = []
    current, weight = "", 0
    for sep, piece, piece_weight in _atoms(text, "", budget, measure, levels, cut):
        # Separators are plain whitespace: they never join a URL, an emoji or an entity.
        sep_weight = len(sep)
        if current and weight + sep_weight + piece_weight <= budget:
            current += sep + piece
            weight += sep_weight + piece_weight
            continue
        if current:
            parts.append(current)
        current, weight = piece, piece_weight
    if current:
        parts.append(current)
    return parts


_X_LEVELS: tuple[_Splitter, ...] = (
    _split_on(_PARAGRAPH_BREAK, lambda _raw: "\n\n"),
    _split_on(_SENTENCE_BREAK, _newline_or_space),
    _split_on(_WORD_BREAK, _newline_or_space),
)
_TG_LEVELS: tuple[_Splitter, ...] = (
    _split_on(_PARAGRAPH_BREAK, lambda _raw: "\n\n"),
    _split_on(_LINE_BREAK, lambda _raw: "\n"),
    _split_html_words,
)


def split_x_thread(text: str, limit: int = 280) -> list[str]:
    """One post if `text` fits, else a thread whose parts end with " 1/3", " 2/3"…

    Splits at paragraphs, then sentences, then words, never inside a URL; every part, suffix
    included, is at most `limit` by `x_weighted_length`.
    """
    text = unicodedata.normalize("NFC", text).strip()
    if x_weighted_length(text) <= limit:
        return [text]
    parts: list[str] = []
    for width in range(1, 5):  # 9, 99, 999, 9999 parts: bounded, and width 4 is already absurd
        budget = limit - len(f" {'9' * width}/{'9' * width}")
        if budget <= _X_URL_WEIGHT:  # a URL alone must fit in a part
            raise ValueError(f"limit {limit} is too small to number a thread")
        parts = _pack(
            text,
            budget,
            x_weighted_length,
            _X_LEVELS,
            functools.partial(_hard_cut, budget=budget, tokens=_x_tokens),
        )
        if len(str(len(parts))) <= width:
            break
    if len(parts) == 1:
        return parts
    total = len(parts)
    return [f"{part} {index}/{total}" for index, part in enumerate(parts, start=1)]


def _balance_tags(parts: list[str]) -> list[str]:
    """Close tags left open at the end of a part and reopen them at the start of the next one."""
    balanced: list[str] = []
    carry: list[tuple[str, str]] = []  # (name, opening tag) still open
    for part in parts:
        text = "".join(tag for _, tag in carry) + part
        stack: list[tuple[str, str]] = []
        for match in _TAG_NAME.finditer(text):
            closing, name = match.group(1), match.group(2).lower()
            if not closing:
                end = text.index(">", match.start()) + 1
                stack.append((name, text[match.start() : end]))
            elif stack and stack[-1][0] == name:
                stack.pop()
        balanced.append(text + "".join(f"</{name}>" for name, _ in reversed(stack)))
        carry = stack
    return balanced


def split_text(text: str, limit: int) -> list[str]:
    """Split Telegram HTML into messages whose visible length is at most `limit` (4096).

    Splits at blank lines, then lines, then words; never inside a tag or an entity, and a tag
    open across a cut is closed in one part and reopened in the next.
    """
    text = text.strip()
    if visible_length(text) <= limit:
        return [text]
    parts = _pack(
        text,
        limit,
        visible_length,
        _TG_LEVELS,
        lambda word: _hard_cut(word, limit, _tg_tokens),
    )
    return _balance_tags(parts)


def split_plain_text(text: str, limit: int) -> list[str]:
    """Split plain text (an answer to a customer) into pieces of at most `limit` characters.

    Escaped, plain text is tag-free Telegram HTML where `split_text` counts each `&…;` as one
    character: the cuts fall where they would in the text itself (paragraphs, lines, words).

    >>> split_plain_text("a <b> & c", 4096)
    ['a <b> & c']
    """
    if len(text) <= limit:
        return [text.strip()]
    return [html.unescape(part) for part in split_text(html.escape(text, quote=False), limit)]


def truncate_at_word(text: str, limit: int, ellipsis: str = "…") -> str:
    """`text` unchanged when it fits, else cut at a word boundary plus `ellipsis`, ≤ `limit` in all.

    >>> truncate_at_word("Paiement indisponible ce soir", 20)
    'Paiement…'
    """
    if len(text) <= limit:
        return text
    budget = limit - len(ellipsis)
    if budget <= 0:
        return ellipsis[:limit]
    head = text[: budget + 1]
    boundary = max(head.rfind(" "), head.rfind("\n"), head.rfind("\t"))
    # A single enormous word: cut it rather than return only the ellipsis.
    cut = head[:boundary] if boundary > 0 else text[:budget]
    cut = cut.rstrip(" \t\n,;:-–—")
    return (cut or text[:budget]) + ellipsis


def fit_subject(text: str, limit: int = 78) -> str:
    """A one-line subject: whitespace collapsed, truncated at a word to `limit` characters."""
    return truncate_at_word(" ".join(text.split()), limit)
