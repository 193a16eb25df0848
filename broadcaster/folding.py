"""Text folded for matching what people write: lower case, no accents, no invisible characters,
ASCII quotes and dashes, one space per run, with every folded character's place in the original
(so a finding can quote the writer's own words). The linter, the intent classifier and the
automated-reply detector all read folded text."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

__all__ = ["Folded", "fold"]

_ASCII = str.maketrans(
    {"’": "'", "‘": "'", "ʼ": "'", "`": "'", "´": "'", "‐": "-", "‑": "-", "‒": "-", "–": "-", "—": "-",
     "œ": "oe", "æ": "ae"}
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Folded:
    """Text folded for matching, with the original index of every folded character."""

    text: str
    origin: tuple[int, ...]
    source: str

    def quote(self, start: int, end: int) -> str:
        """The original words behind `text[start:end]`, on one line."""
        return " ".join(self.source[self.origin[start] : self.origin[end - 1] + 1].split())


def fold(text: str) -> Folded:
    """Lower-case, strip accents and invisible characters, ASCII quotes/dashes, one space per run.

    >>> fold("Désolé,  VOTRE Connexion").text
    'desole, votre connexion'
    """
    chars: list[str] = []
    origin: list[int] = []
    for index, char in enumerate(text):
        for piece in unicodedata.normalize("NFKD", char):
            if unicodedata.combining(piece) or unicodedata.category(piece) == "Cf":
                continue  # accents, soft hyphens, zero-width spaces
            for out in piece.casefold().translate(_ASCII):
                if out.isspace():
                    if not chars or chars[-1] == " ":
                        continue
                    out = " "
                chars.append(out)
                origin.append(index)
    return Folded("".join(chars), tuple(origin), text)
