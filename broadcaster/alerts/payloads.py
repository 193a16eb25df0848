"""What a monitor's webhook says, read into one shape (`MonitorAlert`) whatever the tool.

- Prometheus Alertmanager (webhook_config, payload version 4) and Grafana alerting (its webhook
  contact point, the same shape plus `orgId`, `title`, `state`): one alert group per call,
  `groupKey` naming it, `status` firing or resolved, each alert's `labels` and `annotations`.
- Uptime Kuma (webhook notification, JSON body): `heartbeat.status` 0 down, 1 up (2 pending and 3
  maintenance say nothing), `monitor.name` and `monitor.id`, `msg`.
- generic: `{"group": "...", "status": "firing" | "resolved", "summary": "...", "component": "..."}`
  for anything else that can POST JSON.

The body is someone else's: a missing or mistyped field is a `ValueError` naming it (the route
answers 400), never a half-read alert.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["FIRING", "RESOLVED", "SOURCES", "MonitorAlert", "read_alerts"]

FIRING, RESOLVED = "firing", "resolved"
_SEVERITY_IMPACT = {"critical": "critical", "page": "critical", "warning": "minor", "info": "minor"}
#: Labels that may name what is broken, in the order they are tried against `[alerts.<source>] components`.
_NAMING_LABELS = ("component", "service", "alertname", "job", "instance")
_MAX_TEXT = 300


@dataclass(frozen=True, slots=True)
class MonitorAlert:
    """One alert group as a monitor reports it."""

    group: str  # the same for every repeat of this alert (Alertmanager's groupKey, a monitor's id)
    status: str  # FIRING or RESOLVED
    summary: str  # one line for the staff
    names: tuple[str, ...]  # what may name the component: label values, the monitor's name
    impact: str  # "critical", "major" or "minor", from the alert's severity
    link: str = ""  # where the monitor shows it


def read_alerts(source: str, body: bytes) -> list[MonitorAlert]:
    """The alert groups of one webhook call of `source` (one of `SOURCES`)."""
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise ValueError(f"body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError("body: expected a JSON object")
    return SOURCES[source](data)


def _text(data: Mapping[str, Any], key: str, where: str, *, required: bool = True) -> str:
    value = data.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise ValueError(f"{where}{key}: expected a non-empty string")
    return " ".join(value.split())[:_MAX_TEXT]


def _object(data: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise ValueError(f"{where}{key}: expected an object")
    return value


def _strings(mapping: Mapping[str, Any]) -> dict[str, str]:
    return {str(k): str(v) for k, v in mapping.items() if isinstance(v, str | int | float)}


def _status(value: str, where: str) -> str:
    if value not in (FIRING, RESOLVED):
        raise ValueError(f"{where}status: expected firing or resolved, not {value[:40]!r}")
    return value


def _alertmanager(data: Mapping[str, Any]) -> list[MonitorAlert]:
    """Alertmanager and Grafana: the group's status, common labels and annotations, its alerts'."""
    group = _text(data, "groupKey", "")
    status = _status(_text(data, "status", ""), "")
    alerts = data.get("alerts")
    if not isinstance(alerts, list) or not alerts:
        raise ValueError("alerts: expected a non-empty list")
    labels = _strings(_object(data, "commonLabels", ""))
    annotations = _strings(_object(data, "commonAnnotations", ""))
    first = alerts[0]
    if not isinstance(first, dict):
        raise ValueError("alerts[0]: expected an object")
    labels = labels or _strings(_object(first, "labels", "alerts[0]."))
    annotations = annotations or _strings(_object(first, "annotations", "alerts[0]."))
    names = tuple(labels[label] for label in _NAMING_LABELS if label in labels)
    for index, alert in enumerate(alerts):
        if not isinstance(alert, dict):
            raise ValueError(f"alerts[{index}]: expected an object")
        own = _strings(_object(alert, "labels", f"alerts[{index}]."))
        names += tuple(own[label] for label in _NAMING_LABELS if label in own and own[label] not in names)
    summary = annotations.get("summary") or data.get("title") or labels.get("alertname") or group
    link = _text(first, "generatorURL", "alerts[0].", required=False) or _text(
        data, "externalURL", "", required=False
    )
    severity = labels.get("severity", "").lower()
    return [
        MonitorAlert(
            group=group[:200],
            status=status,
            summary=" ".join(str(summary).split())[:_MAX_TEXT],
            names=names,
            impact=_SEVERITY_IMPACT.get(severity, "major"),
            link=link,
        )
    ]


def _uptime_kuma(data: Mapping[str, Any]) -> list[MonitorAlert]:
    """A monitor's heartbeat: down fires, up resolves; pending and maintenance say nothing yet."""
    heartbeat = _object(data, "heartbeat", "")
    monitor = _object(data, "monitor", "")
    if not heartbeat or not monitor:
        return []  # Uptime Kuma's "test notification" carries only `msg`
    state = heartbeat.get("status")
    if state not in (0, 1):
        if state in (2, 3):
            return []
        raise ValueError("heartbeat.status: expected 0 (down) or 1 (up)")
    name = _text(monitor, "name", "monitor.")
    identity = monitor.get("id")
    if not isinstance(identity, int | str) or isinstance(identity, bool):
        raise ValueError("monitor.id: expected a number")
    message = _text(heartbeat, "msg", "heartbeat.", required=False)
    return [
        MonitorAlert(
            group=f"monitor:{identity}",
            status=FIRING if state == 0 else RESOLVED,
            summary=f"{name}: {message}" if message else name,
            names=(name,),
            impact="major",
            link=_text(monitor, "url", "monitor.", required=False),
        )
    ]


def _generic(data: Mapping[str, Any]) -> list[MonitorAlert]:
    component = _text(data, "component", "")
    return [
        MonitorAlert(
            group=_text(data, "group", "")[:200],
            status=_status(_text(data, "status", ""), ""),
            summary=_text(data, "summary", ""),
            names=(component,),
            impact=_SEVERITY_IMPACT.get(_text(data, "severity", "", required=False).lower(), "major"),
            link=_text(data, "url", "", required=False),
        )
    ]


SOURCES = {
    "alertmanager": _alertmanager,
    "grafana": _alertmanager,
    "uptime-kuma": _uptime_kuma,
    "generic": _generic,
}
