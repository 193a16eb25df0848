"""One maintenance notice: its text (the announcement's), its draft, who receives it, its write.

Every notice reuses the community manager's text stored with the maintenance's first update. A
change of the plan (rescheduled, extended, shortened, cancelled) goes to those who heard of the
window, and to nobody else: a subscriber who subscribed after the last notice never heard of it,
and a window nobody had been told of yet moves, or is dropped, in silence (`Unannounced`). "Told"
is read from the Delivery rows of the maintenance's earlier notices: a row that went out or is on
its way counts, one that failed for good (failed, dead) does not. A public post (X, Facebook, the
Telegram channel, the blog, the push topic) is one target, so its channel counts as told.

    told = await told_targets(session, incident_id)  # {("email", "a@example.com"), ("twitter", "timeline")}
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy import select as sa_select
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from broadcaster.compose.render import Composer
from broadcaster.config import Settings
from broadcaster.delivery.outbox import DEAD, FAILED
from broadcaster.models import Delivery, Incident, IncidentUpdate
from broadcaster.publishing.drafting import PublishError, UpdateDraft, enabled_channels
from broadcaster.publishing.update_writer import Published, write_update

__all__ = [
    "MaintenanceError",
    "Unannounced",
    "composer_for",
    "notice_draft",
    "publish_notice",
    "tell_those_told",
    "told_targets",
]


class MaintenanceError(PublishError):
    """Bad maintenance input (times, components, state): nothing was written."""


@dataclass(frozen=True, slots=True)
class Unannounced:
    """A change of a maintenance nobody had been told of yet: the plan moved (or was dropped), no notice."""

    incident: Incident


@functools.lru_cache(maxsize=8)
def _cached_composer(templates_dir: str, default_locale: str) -> Composer:
    return Composer(Path(templates_dir) if templates_dir else None, default_locale=default_locale)


def composer_for(settings: Settings) -> Composer:
    """The composer of `settings` (templates folder, default locale), built once per process."""
    return _cached_composer(str(settings.templates_dir or ""), settings.brand.default_locale)


def notice_draft(
    settings: Settings,
    messages: Mapping[str, str],
    incident: Incident,
    *,
    phase: str,
    status: str,
    channels: Sequence[str],
    author: str,
    previous_starts_at: datetime | None = None,
    previous_ends_at: datetime | None = None,
) -> UpdateDraft:
    """The draft of one notice: the announced text per locale, the phase and the window's times."""
    default = settings.brand.default_locale
    return UpdateDraft(
        status=status,
        message=messages[default],
        translations={loc: text for loc, text in messages.items() if loc != default},
        channels=tuple(channels),
        author=author,
        phase=phase,
        starts_at=incident.scheduled_start_at,
        ends_at=incident.scheduled_end_at,
        previous_starts_at=previous_starts_at,
        previous_ends_at=previous_ends_at,
    )


async def _announced_messages(session: AsyncSession, incident_id: int) -> dict[str, str]:
    first = (
        await session.exec(
            select(IncidentUpdate)
            .where(IncidentUpdate.incident_id == incident_id)
            .order_by(col(IncidentUpdate.id))
            .limit(1)
        )
    ).first()
    if first is None or not first.messages:
        raise MaintenanceError(f"maintenance #{incident_id} has no message to announce")
    return dict(first.messages)


async def publish_notice(
    session: AsyncSession,
    settings: Settings,
    incident: Incident,
    *,
    phase: str,
    status: str,
    channels: Sequence[str],
    author: str,
    now: datetime,
    previous_starts_at: datetime | None = None,
    previous_ends_at: datetime | None = None,
    only_to: Collection[tuple[str, str]] | None = None,
) -> Published:
    """One maintenance notice through the outbox (renditions, Delivery rows), then the one commit.

    `only_to`: the (channel, target) pairs that receive it (default: the whole audience of `channels`).
    """
    assert incident.id is not None
    messages = await _announced_messages(session, incident.id)
    draft = notice_draft(
        settings, messages, incident, phase=phase, status=status, channels=channels, author=author,
        previous_starts_at=previous_starts_at, previous_ends_at=previous_ends_at,
    )  # fmt: skip
    # The text was linted when the maintenance was scheduled; a job cannot ask anyone to fix it now.
    return await write_update(
        session, settings, composer_for(settings), incident, draft, "maintenance_notice",
        is_first=False, force=True, now=now, only_to=only_to,
    )  # fmt: skip


async def told_targets(session: AsyncSession, incident_id: int) -> frozenset[tuple[str, str]]:
    """The (channel, target) pairs that received, or are receiving, a notice of this maintenance."""
    statement = (
        sa_select(col(Delivery.channel), col(Delivery.target))
        .join(IncidentUpdate, col(IncidentUpdate.id) == col(Delivery.update_id))
        .where(col(IncidentUpdate.incident_id) == incident_id, col(Delivery.status).not_in((FAILED, DEAD)))
        .distinct()
    )
    rows = await (await session.connection()).execute(statement)
    return frozenset((channel, target) for channel, target in rows)


async def tell_those_told(
    session: AsyncSession,
    settings: Settings,
    incident: Incident,
    *,
    phase: str,
    running: bool,
    author: str,
    now: datetime,
    previous_starts_at: datetime | None = None,
    previous_ends_at: datetime | None = None,
) -> Published | Unannounced:
    """A change of plan, told to exactly those who heard of the maintenance; nobody yet: `Unannounced`.

    A running window is never silent: its components change with the notice (which reaches nobody
    in the odd case that its start reached nobody).
    """
    assert incident.id is not None
    told = await told_targets(session, incident.id)
    if not told and not running:
        await session.commit()  # the new times or the cancellation, and what the caller added
        return Unannounced(incident)
    reached = {channel for channel, _ in told}
    return await publish_notice(
        session, settings, incident, phase=phase, status=incident.status,
        channels=[c for c in enabled_channels(settings) if c in reached], author=author, now=now,
        previous_starts_at=previous_starts_at, previous_ends_at=previous_ends_at, only_to=told,
    )  # fmt: skip
