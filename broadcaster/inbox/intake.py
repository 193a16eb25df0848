"""Customer messages made storable before they reach the database, whatever their channel.

What a provider relays is the sender's: a NUL byte (PostgreSQL refuses it in text), a lone
surrogate (not encodable as UTF-8: SQLite refuses it), a name or an id longer than its column,
a float that is not a number in the raw payload (not JSON for PostgreSQL). Each would fail the
whole transaction, so it is normalised here: NUL and lone surrogates dropped, text cut to the
column, an over-long id cut with a digest of the whole so two such ids stay two, NaN and
infinities in `raw` nulled.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import re
from collections.abc import Mapping

from broadcaster.models import InboundRecord
from channels.base import InboundMessage

__all__ = ["MAX_RAW_DEPTH", "normalised", "storable_text"]

#: How deep `raw` is kept; deeper values become null (webhook bodies deeper than this are refused).
MAX_RAW_DEPTH = 64
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
_COLUMNS = InboundRecord.__table__.c  # type: ignore[attr-defined]
_IDS = ("external_id", "conversation_key", "reply_to")
_TEXTS = ("customer_handle", "customer_name", "language")
_DIGEST = 16


def storable_text(value: str) -> str:
    """`value` without NUL characters and lone surrogates."""
    return _UNSTORABLE.sub("", value)


def normalised(message: InboundMessage) -> InboundMessage:
    """`message` as every database stores it (see the module's doc)."""
    changes: dict[str, object] = {"text": storable_text(message.text), "raw": _raw(message.raw)}
    for name in _IDS:
        changes[name] = _fitted_id(storable_text(getattr(message, name)), _COLUMNS[name].type.length)
    for name in _TEXTS:
        changes[name] = storable_text(getattr(message, name))[: _COLUMNS[name].type.length]
    return dataclasses.replace(message, **changes)  # type: ignore[arg-type]


def _fitted_id(value: str, length: int) -> str:
    if len(value) <= length:
        return value
    digest = hashlib.sha256(value.encode()).hexdigest()[:_DIGEST]
    return f"{value[: length - _DIGEST - 1]}#{digest}"


def _raw(raw: Mapping[str, object]) -> dict[str, object]:
    cleaned = _json_value(dict(raw), MAX_RAW_DEPTH)
    return cleaned if isinstance(cleaned, dict) else {}


def _json_value(value: object, depth: int) -> object:
    if isinstance(value, str):
        return storable_text(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping | list | tuple) and depth < 0:
        return None
    if isinstance(value, Mapping):
        return {storable_text(str(k)): _json_value(v, depth - 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_value(v, depth - 1) for v in value]
    return value
