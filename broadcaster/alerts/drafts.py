"""A monitor's alert, acted on: the staff hear of an outage before the customers do.

- firing, and mapped to a component (`[alerts.<source>] components`): a **draft** incident with the
  alert's summary, and a staff alert with the command that publishes it. Repeats of the same alert
  group update that draft (its components, its notes) and alert nobody again; once its incident is
  resolved, the next firing starts a new draft;
- resolved: the staff are told ("monitoring says resolved — publish the resolution?") with the
  command; nothing is ever resolved, published or discarded by a monitor;
- not mapped to any component: stored nowhere, counted as ignored.

One transaction per webhook call; two nodes receiving the same group at once make one draft (the
group is unique per source).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from broadcaster.alerts.payloads import FIRING, MonitorAlert
from broadcaster.auth.audit import record
from broadcaster.config import AlertSourceSettings, Settings
from broadcaster.db import writing
from broadcaster.delivery.staff_alerts import queue_staff_alert
from broadcaster.inbox.spikes import publish_command
from broadcaster.models import Incident
from broadcaster.models import MonitorAlert as AlertRow

__all__ = ["Handled", "act_on_alerts"]

_CLOSED = ("resolved", "discarded")


@dataclass(slots=True)
class Handled:
    """What one webhook call did."""

    drafted: list[int] = field(default_factory=list)  # new draft incidents
    updated: list[int] = field(default_factory=list)  # drafts (or incidents) a repeat updated
    told: list[int] = field(default_factory=list)  # incidents the staff were told are resolved
    ignored: int = 0  # alerts naming no configured component

    def as_dict(self) -> dict[str, object]:
        return {"drafted": self.drafted, "updated": self.updated, "told": self.told, "ignored": self.ignored}


def _components(alert: MonitorAlert, source: AlertSourceSettings) -> list[str]:
    found = [source.components[name] for name in alert.names if name in source.components]
    return list(dict.fromkeys(found))


async def act_on_alerts(
    session: AsyncSession,
    settings: Settings,
    source_name: str,
    alerts: Sequence[MonitorAlert],
    now: datetime,
) -> Handled:
    """Draft, update or tell for each alert group of one call, in one transaction."""
    source = settings.alerts[source_name]
    handled = Handled()
    async with writing(session):
        for alert in alerts:
            components = _components(alert, source)
            if not components:
                handled.ignored += 1
                continue
            row = (
                await session.exec(
                    select(AlertRow).where(AlertRow.source == source_name, AlertRow.group_key == alert.group)
                )
            ).first()
            incident = await session.get(Incident, row.incident_id) if row and row.incident_id else None
            if alert.status == FIRING:
                await _firing(session, settings, source_name, alert, components, row, incident, now, handled)
            elif row is not None and incident is not None and row.status == FIRING:
                await _resolved(session, settings, alert, incident, now, handled)
            if row is not None:
                row.status, row.summary, row.last_seen_at = alert.status, alert.summary, now
                session.add(row)
        try:
            await session.commit()
        except IntegrityError:  # another node drafted this group first: theirs stands
            await session.rollback()
            return Handled(ignored=handled.ignored)
    return handled


async def _firing(
    session: AsyncSession,
    settings: Settings,
    source_name: str,
    alert: MonitorAlert,
    components: list[str],
    row: AlertRow | None,
    incident: Incident | None,
    now: datetime,
    handled: Handled,
) -> None:
    if incident is not None and incident.status not in _CLOSED:
        if incident.status == "draft":
            incident.components = list(dict.fromkeys([*incident.components, *components]))
            incident.notes = _notes(source_name, alert, now, incident.notes)
            session.add(incident)
        assert incident.id is not None
        handled.updated.append(incident.id)
        return
    draft = Incident(
        title=alert.summary[:200],
        status="draft",
        impact=alert.impact,
        components=components,
        notes=_notes(source_name, alert, now, ""),
        created_at=now,
    )
    session.add(draft)
    await session.flush()
    assert draft.id is not None
    record(
        session, "incident.draft", f"incident:{draft.id}", f"{source_name} alert {alert.group}: {draft.title}"
    )
    if row is None:
        session.add(
            AlertRow(
                source=source_name,
                group_key=alert.group,
                incident_id=draft.id,
                status=alert.status,
                summary=alert.summary,
                first_seen_at=now,
                last_seen_at=now,
            )
        )
    else:
        row.incident_id = draft.id
    labels = ", ".join(settings.component_label(c, settings.brand.default_locale) for c in components)
    text = "\n".join(
        [
            f"{source_name} reports: {alert.summary}",
            f"Affected: {labels}." + (f" {alert.link}" if alert.link else ""),
            f"Draft incident #{draft.id} is waiting for you. Publish it (customers are told):",
            publish_command(draft.id),
            "Or discard it:",
            f"broadcaster incident discard {draft.id}",
        ]
    )
    subject = f"{settings.brand.name}: monitoring alert — draft #{draft.id}: {alert.summary}"[:200]
    await queue_staff_alert(await session.connection(), settings, subject, text, now)
    handled.drafted.append(draft.id)


async def _resolved(
    session: AsyncSession,
    settings: Settings,
    alert: MonitorAlert,
    incident: Incident,
    now: datetime,
    handled: Handled,
) -> None:
    if incident.status in _CLOSED:
        return
    assert incident.id is not None
    if incident.status == "draft":
        advice = ["It was never published: discard the draft if nothing else is wrong:",
                  f"broadcaster incident discard {incident.id}"]  # fmt: skip
    else:
        advice = ["Publish the resolution when you have checked (customers are told):",
                  f'broadcaster incident resolve {incident.id} --message "…"']  # fmt: skip
    text = "\n".join([f"Monitoring says resolved: {alert.summary}", f"Incident #{incident.id}.", *advice])
    subject = f"{settings.brand.name}: monitoring says resolved — #{incident.id}: {incident.title}"[:200]
    await queue_staff_alert(await session.connection(), settings, subject, text, now)
    handled.told.append(incident.id)


def _notes(source_name: str, alert: MonitorAlert, now: datetime, before: str) -> str:
    line = f"{now:%Y-%m-%d %H:%M} UTC {source_name} {alert.status}: {alert.summary}"
    return "\n".join(filter(None, [before, line + (f" ({alert.link})" if alert.link else "")]))[-4000:]
