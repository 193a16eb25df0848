"""Control characters in what people write: refused at publication, dropped by every renderer.

Tab, line feed and carriage return are text in a message; every other C0 control, DEL, the C1
controls, lone surrogates and U+FFFE/U+FFFF are not (XML refuses most of them: one BEL pasted into
an update made /feed.atom fail for the whole history window). A title is one line: no control at all.

>>> control_character("Paiement\\x07 indisponible")
'control character U+0007 at position 9'
"""

from __future__ import annotations

import re

__all__ = ["control_character", "without_controls"]

_IN_TEXT = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")
_IN_LINE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")


def control_character(text: str, *, single_line: bool = False) -> str:
    """The first control character of `text` and its position (1-based), or "" when there is none.

    Leading and trailing whitespace is left out: texts are stored stripped.
    """
    start, end = len(text) - len(text.lstrip()), len(text.rstrip())
    found = (_IN_LINE if single_line else _IN_TEXT).search(text, start, max(start, end))
    if found is None:
        return ""
    return f"control character U+{ord(found.group()):04X} at position {found.start() + 1}"


def without_controls(text: str) -> str:
    """`text` without the characters publication refuses (for rows stored before it refused them)."""
    return _IN_TEXT.sub("", text)
