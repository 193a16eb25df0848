"""A maintenance's notices as a reader sees them: each distinct notice once, newest first.

The notice ladder sends the same announcement several times (e-mail 72 h before, push 24 h before,
social posts 1 h before): to a reader that is one announcement. What differs is what each notice
said — announced, rescheduled (old → new window), started, extended or shortened (old → new end),
completed, cancelled — read from the `NoticeFacts` stored with the notice's renditions.

    notices = distinct_notices(updates, facts)   # [Notice("completed", …), Notice("started", …), …]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from markupsafe import Markup
from sqlmodel import col, select

from broadcaster.message import NoticeFacts, RenderedMessage
from broadcaster.models import IncidentUpdate, Rendition
from broadcaster.web.times import PageClock

__all__ = ["NOTICE_KINDS", "Notice", "describe", "distinct_notices", "notice_facts"]

#: What a reader is told, in the order a window lives through it.
NOTICE_KINDS = ("announced", "rescheduled", "started", "extended", "shortened", "completed", "cancelled")
#: A notice rendered before its facts were stored says what its status says.
_BY_STATUS = {
    "scheduled": "notice",
    "in_progress": "started",
    "completed": "completed",
    "cancelled": "cancelled",
}


@dataclass(frozen=True, slots=True)
class Notice:
    """One distinct notice: what it said (`kind`, one of NOTICE_KINDS), when, and the times it gave.

    `previous_*` are the times a rescheduling or a moved end replaced (None otherwise).
    """

    kind: str
    at: datetime
    update_id: int
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    previous_starts_at: datetime | None = None
    previous_ends_at: datetime | None = None


def _kind(facts: NoticeFacts) -> str | None:
    """The reader's word for a phase; a moved end says which way it moved, whatever it was called."""
    if facts.phase == "notice":
        return "announced"
    if facts.phase in ("extended", "shortened") and facts.ends_at and facts.previous_ends_at:
        return "extended" if facts.ends_at > facts.previous_ends_at else "shortened"
    return facts.phase if facts.phase in NOTICE_KINDS else None


def distinct_notices(updates: Sequence[IncidentUpdate], facts: Mapping[int, NoticeFacts]) -> list[Notice]:
    """Each distinct notice of `updates` (oldest first, as stored) once, newest first.

    A notice sent again to other channels (the next rung of the ladder) is the one already shown,
    dated by its first sending; the maintenance's first update (scheduling it) is its announcement.
    """
    seen: dict[tuple[Any, ...], int] = {}  # notice → its index in `notices`
    notices: list[Notice] = []
    for update in updates:
        assert update.id is not None
        known = facts.get(update.id) or NoticeFacts(phase=_BY_STATUS.get(update.status, ""))
        kind = _kind(known)
        if kind is None:
            continue
        times = (known.starts_at, known.ends_at, known.previous_starts_at, known.previous_ends_at)
        key: tuple[Any, ...] = (kind,) if kind == "announced" else (kind, *times)
        if key not in seen:
            seen[key] = len(notices)
            notices.append(Notice(kind, update.created_at, update.id, *times))
        elif kind == "announced" and notices[seen[key]].starts_at is None:
            # scheduling it was the announcement; its first sending says which window it gave
            first = notices[seen[key]]
            notices[seen[key]] = Notice(kind, first.at, first.update_id, *times)
    return sorted(notices, key=lambda n: (n.at, n.update_id), reverse=True)


def describe(notice: Notice, clock: PageClock, words: dict[str, str]) -> list[tuple[str, Markup]]:
    """What a notice said, line by line (label, times as HTML): the new window and the old one…"""
    start, end = notice.starts_at, notice.ends_at
    lines: list[tuple[str, Markup]] = []
    if notice.kind == "announced" and start and end:
        lines.append((words["planned_window"], clock.window_html(start, end)))
    elif notice.kind == "rescheduled" and start and end:
        lines.append((words["new_window"], clock.window_html(start, end)))
        if notice.previous_starts_at and notice.previous_ends_at:
            lines.append(
                (words["old_window"], clock.window_html(notice.previous_starts_at, notice.previous_ends_at))
            )
    elif notice.kind in ("extended", "shortened") and end:
        lines.append((words["new_end"], clock.html(end)))
        if notice.previous_ends_at:
            lines.append((words["old_end"], clock.html(notice.previous_ends_at)))
    elif notice.kind == "started" and end:
        lines.append((words["planned_end"], clock.html(end)))
    return lines


async def notice_facts(session: Any, update_ids: Sequence[int]) -> dict[int, NoticeFacts]:
    """The `NoticeFacts` of each update that has them (any one of its renditions carries them)."""
    if not update_ids:
        return {}
    rows = await session.exec(
        select(Rendition.update_id, Rendition.payload).where(col(Rendition.update_id).in_(update_ids))
    )
    found: dict[int, NoticeFacts] = {}
    for update_id, payload in rows:
        if update_id not in found:
            facts = NoticeFacts.from_extra(RenderedMessage.from_json(payload).extra)
            if facts is not None:
                found[update_id] = facts
    return found
