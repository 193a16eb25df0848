"""One header of a received e-mail as plain text, however malformed the sender made it."""

from __future__ import annotations

from email.message import Message

__all__ = ["header_text"]


def header_text(message: Message, name: str) -> str:
    """`name`'s value on one line ("" when absent); a header the parser chokes on is read raw,
    since a malformed header must not lose a customer's reply."""
    try:
        value = message.get(name)
    except (ValueError, IndexError, TypeError):
        value = next((v for k, v in message.raw_items() if k.lower() == name.lower()), None)
    return " ".join(str(value).split()) if value is not None else ""
