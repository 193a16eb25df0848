"""Every CLI module prints outside text through `outside` (see `broadcaster/cli/outside.py`).

Rich renders `[...]` in a string as markup and passes terminal sequences through: a `Text` built
from anything but a literal, or markup escaping by hand, would let a customer's words past it.
"""

from __future__ import annotations

import re
from pathlib import Path

import broadcaster.cli

CLI = Path(broadcaster.cli.__file__).parent
BUILT_FROM_A_VALUE = re.compile(r"""\bText\((?!\)|"[^"]*"[,)]|'[^']*'[,)])""")


def test_cli_modules_build_text_only_from_literals_and_never_escape_markup_by_hand() -> None:
    offences = []
    for module in sorted(CLI.glob("*.py")):
        if module.name == "outside.py":
            continue
        for number, line in enumerate(module.read_text(encoding="utf-8").splitlines(), 1):
            if BUILT_FROM_A_VALUE.search(line) or "rich.markup" in line:
                offences.append(f"{module.name}:{number}: {line.strip()}")
    assert offences == [], "print outside text with `outside(...)`:\n" + "\n".join(offences)
