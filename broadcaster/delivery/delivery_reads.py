"""Where an incident's messages stand — counts by channel and state, paused channels, the rows that
failed or wait for a retry with their reasons — shared by `broadcaster deliveries`, the API and the
console."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlmodel import col, select

from broadcaster.db import SessionFactory
from broadcaster.delivery import channel_pause, outbox
from broadcaster.models import ChannelPause, Delivery, Incident, IncidentUpdate

__all__ = ["DeliveryReport", "delivery_dict", "incident_deliveries"]


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    counts: dict[str, dict[str, int]]  # channel → status → rows
    rows: list[Delivery]  # the troubled ones, or those of the states asked for
    pauses: dict[str, ChannelPause]


async def incident_deliveries(
    sessions: SessionFactory,
    incident_id: int,
    *,
    update_id: int | None = None,
    statuses: Sequence[str] = (),
    limit: int = 20,
) -> DeliveryReport | None:
    """None for an unknown incident. `rows`: of `statuses` if given, else the failed, dead and retrying."""
    async with sessions() as session:
        if await session.get(Incident, incident_id) is None:
            return None
        ids = [
            i
            for i in await session.exec(
                select(IncidentUpdate.id).where(IncidentUpdate.incident_id == incident_id)
            )
            if i is not None and (update_id is None or i == update_id)
        ]
        counts = await outbox.counts_by_channel(session, ids)
        rows = select(Delivery).where(col(Delivery.update_id).in_(ids))
        if statuses:
            rows = rows.where(col(Delivery.status).in_(statuses))
        else:
            rows = rows.where(col(Delivery.last_error) != "", col(Delivery.status).not_in(outbox.DELIVERED))
        found = list(await session.exec(rows.order_by(col(Delivery.id)).limit(limit)))
        return DeliveryReport(counts, found, await channel_pause.paused(session))


def delivery_dict(d: Delivery, *, with_target: bool = True) -> dict[str, object]:
    """One row; `with_target=False` leaves out the address or chat (for roles that read no subscriber)."""
    found: dict[str, object] = {
        "id": d.id,
        "update_id": d.update_id,
        "channel": d.channel,
        "status": d.status,
        "attempts": d.attempts,
        "last_error": d.last_error,
        "next_attempt_at": d.next_attempt_at.isoformat(),
    }
    if with_target:
        found["target"] = d.target
    return found
