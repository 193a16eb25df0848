"""A component's status is the worst of what is open on it.

Every open incident affecting a component counts by its impact, every running maintenance as
"maintenance"; with nothing open it is operational. `Component.status` is only a cache of that
rule, recomputed in the transaction of every write that opens, changes or closes something, so the
status page, `/api/v1/status`, messages and the bot all read the same answer.

    statuses = worst_statuses([("incident", "minor", ["website"]), ("incident", "critical", ["website"])])
    assert statuses == {"website": "major_outage"}
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import Connection, bindparam, select, update

from broadcaster.models import NOT_OPEN, Component, Incident

__all__ = [
    "OPERATIONAL",
    "SEVERITY",
    "STATUS_BY_IMPACT",
    "affected_elsewhere_sync",
    "refresh_component_statuses_sync",
    "worst_statuses",
]

OPERATIONAL = "operational"
#: From best to worst, as Statuspage orders them: a maintenance is better than any outage.
SEVERITY = (OPERATIONAL, "maintenance", "degraded", "partial_outage", "major_outage")
STATUS_BY_IMPACT = {
    "none": OPERATIONAL,
    "minor": "degraded",
    "major": "partial_outage",
    "critical": "major_outage",
}

_incidents = Incident.__table__  # type: ignore[attr-defined]
_components = Component.__table__  # type: ignore[attr-defined]


def status_of(kind: str, impact: str) -> str:
    """What one open incident or running maintenance makes of the components it affects."""
    return "maintenance" if kind == "maintenance" else STATUS_BY_IMPACT.get(impact, "major_outage")


def worst_statuses(open_items: Iterable[tuple[str, str, Sequence[str]]]) -> dict[str, str]:
    """(kind, impact, components) of everything open → each affected component's worst status."""
    worst: dict[str, str] = {}
    for kind, impact, components in open_items:
        status = status_of(kind, impact)
        for name in components:
            if SEVERITY.index(status) > SEVERITY.index(worst.get(name, OPERATIONAL)):
                worst[name] = status
    return worst


def _open_items(connection: Connection, *, excluding: int | None = None) -> list[tuple[str, str, list[str]]]:
    statement = select(_incidents.c.kind, _incidents.c.impact, _incidents.c.components).where(
        _incidents.c.status.not_in(NOT_OPEN)
    )
    if excluding is not None:
        statement = statement.where(_incidents.c.id != excluding)
    return [(row.kind, row.impact, list(row.components or [])) for row in connection.execute(statement)]


def refresh_component_statuses_sync(connection: Connection, now: datetime) -> dict[str, str]:
    """Recompute every component's status in the caller's transaction; return those that changed."""
    wanted = worst_statuses(_open_items(connection))
    changed = {
        row.name: wanted.get(row.name, OPERATIONAL)
        for row in connection.execute(select(_components.c.name, _components.c.status))
        if row.status != wanted.get(row.name, OPERATIONAL)
    }
    if changed:
        connection.execute(
            update(_components)
            .where(_components.c.name == bindparam("b_name"))
            .values(status=bindparam("b_status"), updated_at=now),
            [{"b_name": name, "b_status": status} for name, status in changed.items()],
        )
    return changed


def affected_elsewhere_sync(connection: Connection, incident_id: int, components: Sequence[str]) -> list[str]:
    """Which of `components` something else open still affects (another incident, a maintenance)."""
    others = worst_statuses(_open_items(connection, excluding=incident_id))
    return [name for name in components if others.get(name, OPERATIONAL) != OPERATIONAL]
