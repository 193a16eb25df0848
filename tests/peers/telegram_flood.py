"""Telegram's flood limits as the Telegram peer enforces them, over any sliding window.

https://core.telegram.org/bots/faq#my-bot-is-hitting-limits-how-do-i-avoid-this: about 30
messages a second overall, 1 a second to one chat, 20 a minute to one group. A message over a
limit is refused with 429 and `retry_after` (whole seconds, as Telegram sends it) and counted.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

__all__ = ["FloodLimits"]


@dataclass
class FloodLimits:
    """Which arrivals to refuse; `check(chat, now)` records an accepted one. Not thread-safe:
    the peer calls it under its lock."""

    per_second: int = 30
    per_chat_interval: float = 1.0
    per_group_per_minute: int = 20
    refused: int = 0
    _overall: deque[float] = field(default_factory=deque, repr=False)
    _last_to_chat: dict[str, float] = field(default_factory=dict, repr=False)
    _group_minute: dict[str, deque[float]] = field(default_factory=dict, repr=False)

    def check(self, chat: str, now: float) -> int | None:
        """None if a message to `chat` arriving at `now` is within every limit (it is counted),
        else the `retry_after` seconds of the 429 (the refusal is counted)."""
        while self._overall and self._overall[0] + 1.0 <= now:
            self._overall.popleft()
        waits = []
        if len(self._overall) >= self.per_second:
            waits.append(self._overall[0] + 1.0 - now)
        last = self._last_to_chat.get(chat)
        if last is not None and last + self.per_chat_interval > now:
            waits.append(last + self.per_chat_interval - now)
        minute = self._group_minute.setdefault(chat, deque()) if chat.startswith("-") else None
        if minute is not None:
            while minute and minute[0] + 60.0 <= now:
                minute.popleft()
            if len(minute) >= self.per_group_per_minute:
                waits.append(minute[0] + 60.0 - now)
        if waits:
            self.refused += 1
            return max(1, math.ceil(max(waits)))
        self._overall.append(now)
        self._last_to_chat[chat] = now
        if minute is not None:
            minute.append(now)
        return None
