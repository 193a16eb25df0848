"""Text from outside — customers, providers, imported files — made safe for the agent's terminal.

A customer's message can carry terminal sequences: OSC 52 writes the clipboard, OSC 8 hides a
link behind innocent words, CSI clears the screen or conceals text. Rich passes them through
to the terminal as they are, and renders `[...]` in a string as markup. So every piece of
outside text is printed as `outside(...)`: a Rich `Text` (never read as markup) in which each
C0 and C1 control but newline and tab is shown as `\\x1b`, never sent.

    console.print(outside(message.text))  # "\\x1b]52;c;…" is printed, the clipboard untouched
"""

from __future__ import annotations

import re
from json import dumps, loads
from typing import Any

from rich.console import Console
from rich.highlighter import JSONHighlighter
from rich.text import Text

__all__ = ["TerminalConsole", "outside"]

_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_JSON_CONTROLS = re.compile("[\x7f-\x9f]")  # json.dumps escapes C0 itself


def outside(value: str, style: str = "") -> Text:
    """`value` as `Text` with its control characters shown (`\\x1b`), its brackets literal."""
    return Text(_CONTROLS.sub(lambda found: f"\\x{ord(found[0]):02x}", value), style=style)


class TerminalConsole(Console):
    """A `Console` whose JSON output escapes C1 controls too (JSON itself escapes only C0)."""

    def print_json(
        self, json: str | None = None, *, data: Any = None, indent: None | int | str = 2, **_: Any
    ) -> None:
        text = dumps(loads(json) if json is not None else data, indent=indent, ensure_ascii=False)
        shown = _JSON_CONTROLS.sub(lambda found: f"\\u{ord(found[0]):04x}", text)
        self.print(JSONHighlighter()(Text(shown)), soft_wrap=True)
