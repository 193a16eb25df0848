"""Put an update's dead (or failed) deliveries back in the queue once a relay or credential is fixed.

Only rows in the chosen final failure states move: `sent`, `captured`, `pending` and `sending`
rows are never touched, so nothing that went out is sent again. A row whose subscription is no
longer active (unsubscribed, or deactivated by a permanent refusal) stays as it is: requeueing
never reactivates a subscriber; it is counted as skipped.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, or_, select, update
from sqlmodel import col
from sqlmodel.ext.asyncio.session import AsyncSession

from broadcaster.auth.audit import record
from broadcaster.db import writing
from broadcaster.delivery import outbox
from broadcaster.errors import InvalidInput, NotFound
from broadcaster.models import Delivery, IncidentUpdate, Subscription, utcnow
from channels.registry import CHANNEL_NAMES

__all__ = ["ByChannel", "REQUEUEABLE", "Requeued", "requeue"]

REQUEUEABLE = (outbox.DEAD, outbox.FAILED)

ByChannel = dict[str, dict[str, int]]


@dataclass(frozen=True, slots=True)
class Requeued:
    """What a requeue moved (or would move), {channel: {previous status: n}}, and what it left."""

    update_id: int
    requeued: ByChannel
    skipped_inactive: ByChannel
    dry_run: bool = False


def _check_choice(statuses: Sequence[str], channels: Sequence[str]) -> None:
    wrong = [s for s in statuses if s not in REQUEUEABLE]
    if wrong:
        raise InvalidInput(f"--status {wrong[0]!r}: only {' or '.join(REQUEUEABLE)} rows can be requeued")
    unknown = [c for c in channels if c not in CHANNEL_NAMES]
    if unknown:
        raise InvalidInput(f"--channel {unknown[0]!r}: no such channel (one of {', '.join(CHANNEL_NAMES)})")


async def requeue(
    session: AsyncSession,
    update_id: int,
    *,
    statuses: Sequence[str] = (outbox.DEAD,),
    channels: Sequence[str] = (),
    dry_run: bool = False,
    now: datetime | None = None,
) -> Requeued:
    """Reset the chosen rows of `update_id` to `pending`, due now, with no attempts, error or lease,
    and a retry window that starts now.

    One transaction: every chosen row moves or none does. `NotFound` names an unknown update and
    `InvalidInput` a wrong status or channel, before anything is written.
    """
    _check_choice(statuses, channels)
    now = now or utcnow()
    async with writing(session):
        if await session.get(IncidentUpdate, update_id) is None:
            raise NotFound(f"no update #{update_id}")
        chosen: list[ColumnElement[bool]] = [col(Delivery.status).in_(statuses)]
        if channels:
            chosen.append(col(Delivery.channel).in_(channels))
        active = select(col(Subscription.id)).where(col(Subscription.active))
        reachable = or_(col(Delivery.subscription_id).is_(None), col(Delivery.subscription_id).in_(active))
        connection = await session.connection()
        skipped = await outbox.counts_by_channel(session, [update_id], *chosen, ~reachable)
        if dry_run:
            would = await outbox.counts_by_channel(session, [update_id], *chosen, reachable)
            await session.rollback()
            return Requeued(update_id, would, skipped, dry_run=True)
        moved: ByChannel = {}
        for status in dict.fromkeys(statuses):
            result = await connection.execute(
                update(Delivery)
                .where(
                    col(Delivery.update_id) == update_id, col(Delivery.status) == status, *chosen, reachable
                )
                .values(
                    status=outbox.PENDING,
                    attempts=0,
                    last_error="",
                    lease_until=None,
                    claim_token="",
                    next_attempt_at=now,
                    requeued_at=now,  # a fresh retry window: the fix may take longer than the old one's rest
                )
                .returning(col(Delivery.channel))
            )
            for channel, n in Counter(result.scalars()).items():
                moved.setdefault(channel, {})[status] = n
        total = sum(n for by_status in moved.values() for n in by_status.values())
        record(
            session,
            "deliveries.requeue",
            f"update:{update_id}",
            f"{total} deliveries ({', '.join(statuses)})",
        )
        await session.commit()
    return Requeued(update_id, moved, skipped)
