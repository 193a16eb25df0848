"""Webhook bodies checked as JSON before a parser reads them: a 400 naming the field, never a 500.

Python's JSON accepts what no provider sends and what breaks later: nesting deep enough to
exhaust the recursion limit, integers past 64 bits (a Telegram `date` of 2^63 overflows the
clock), `NaN` and infinities (not JSON: PostgreSQL refuses them).
"""

from __future__ import annotations

import json
import math

from broadcaster.errors import InvalidInput
from broadcaster.inbox.intake import MAX_RAW_DEPTH

__all__ = ["MAX_DEPTH", "check_json"]

MAX_DEPTH = MAX_RAW_DEPTH
_INT64 = range(-(2**63), 2**63)
_KEY_SHOWN = 40


class _Constant(str):
    """`NaN`, `Infinity` or `-Infinity` as read, so the check can name where it was."""


def check_json(body: bytes) -> None:
    """Raise `ValueError` naming the first field that is too deep, too big an integer, or not a number."""
    try:
        data = json.loads(body, parse_constant=_Constant)
    except RecursionError:
        raise InvalidInput(f"body: nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:
        raise InvalidInput(f"body is not JSON: {exc}") from None
    pending: list[tuple[object, str, int]] = [(data, "", 0)]
    while pending:
        value, path, depth = pending.pop()
        if depth > MAX_DEPTH:
            raise InvalidInput(f"{path}: nested deeper than {MAX_DEPTH} levels")
        if isinstance(value, dict):
            pending.extend((v, _joined(path, str(k)), depth + 1) for k, v in value.items())
        elif isinstance(value, list):
            pending.extend((v, f"{path}[{i}]", depth + 1) for i, v in enumerate(value))
        elif isinstance(value, _Constant) or (isinstance(value, float) and not math.isfinite(value)):
            raise InvalidInput(f"{path or 'body'}: {value} is not a number JSON allows")
        elif isinstance(value, int) and not isinstance(value, bool) and value not in _INT64:
            raise InvalidInput(f"{path or 'body'}: integer beyond 64 bits")


def _joined(path: str, key: str) -> str:
    shown = key if len(key) <= _KEY_SHOWN else key[:_KEY_SHOWN] + "…"
    return f"{path}.{shown}" if path else shown
