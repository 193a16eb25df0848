"""One conversation as a filing batch sees it, shared by the filer and the status bot."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

__all__ = ["Thread"]


@dataclass(slots=True)
class Thread:
    """What a batch knows and changes of one conversation (plain data: ORM objects cost ~0.5 ms each)."""

    channel: str
    key: str
    handle: str
    name: str
    locale: str
    incident_id: int | None
    last_message_at: datetime
    id: int | None = None
    bot_answered_state: int | None = None
    handed_off: bool = False
    status: str = "open"
