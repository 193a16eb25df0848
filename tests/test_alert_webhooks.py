"""Monitors tell us first: `/webhooks/alerts/<source>` drafts an incident and alerts the staff.

Payloads follow the tools' documented webhook bodies (Alertmanager's version 4, Grafana's webhook
contact point, Uptime Kuma's heartbeat + monitor), with values of our own.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlmodel import col, select

from broadcaster.config import Settings
from broadcaster.db import SessionFactory
from broadcaster.models import Delivery, Incident, MonitorAlert
from broadcaster.publishing.incidents import discard_draft
from broadcaster.web import create_app
from broadcaster.web.alert_webhooks import signature_of
from tests.conftest import make_settings
from tests.e2e.helpers import live_settings
from tests.e2e.test_faults import dispatching, until
from tests.peers.smtp import SmtpPeer
from tests.served import served

SECRET = "s3cret-for-the-monitors"
ALERTS = {
    "alertmanager": {
        "secret": SECRET,
        "components": {"payment-gateway": "payment", "checkout-api": "checkout"},
    },
    "grafana": {"secret": SECRET, "components": {"Checkout latency": "checkout"}},
    "uptime-kuma": {"secret": SECRET, "components": {"Boutique": "website"}},
    "generic": {"secret": SECRET, "components": {"app": "mobile-app"}},
}
STAFF = {"email": "astreinte@maison-exemple.fr"}


def alertmanager(status: str = "firing", group: str = '{}:{alertname="PaymentErrors"}') -> dict[str, Any]:
    labels = {"alertname": "PaymentErrors", "service": "payment-gateway", "severity": "critical"}
    return {
        "version": "4",
        "groupKey": group,
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "status-broadcaster",
        "groupLabels": {"alertname": "PaymentErrors"},
        "commonLabels": labels,
        "commonAnnotations": {"summary": "Card payments failing for 12% of attempts"},
        "externalURL": "http://alertmanager.internal:9093",
        "alerts": [
            {
                "status": status,
                "labels": labels,
                "annotations": {"summary": "Card payments failing for 12% of attempts"},
                "startsAt": "2026-12-04T13:58:10.512Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus.internal:9090/graph?g0.expr=payment_errors",
                "fingerprint": "7be1c0f3aa1b92d4",
            }
        ],
    }


def grafana(status: str = "firing") -> dict[str, Any]:
    return {
        "receiver": "broadcaster",
        "status": status,
        "orgId": 1,
        "alerts": [
            {
                "status": status,
                "labels": {"alertname": "Checkout latency", "team": "shop"},
                "annotations": {"summary": "p95 of /checkout above 4 s"},
                "startsAt": "2026-12-04T14:01:00+01:00",
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "https://grafana.internal/alerting/abc/edit",
                "fingerprint": "51c0aa9e0f7d2b11",
                "values": {"B": 4.7, "C": 1},
            }
        ],
        "groupLabels": {"alertname": "Checkout latency"},
        "commonLabels": {"alertname": "Checkout latency", "team": "shop"},
        "commonAnnotations": {"summary": "p95 of /checkout above 4 s"},
        "externalURL": "https://grafana.internal/",
        "version": "1",
        "groupKey": '{}/{}:{alertname="Checkout latency"}',
        "truncatedAlerts": 0,
        "title": "[FIRING:1] Checkout latency",
        "state": "alerting",
        "message": "p95 of /checkout above 4 s",
    }


def uptime_kuma(status: int) -> dict[str, Any]:
    return {
        "heartbeat": {"monitorID": 7, "status": status, "time": "2026-12-04 14:03:12.118",
                      "msg": "connect ECONNREFUSED 203.0.113.8:443", "important": True},
        "monitor": {"id": 7, "name": "Boutique", "url": "https://shop.example", "type": "http"},
        "msg": "[Boutique] [🔴 Down] connect ECONNREFUSED 203.0.113.8:443",
    }  # fmt: skip


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(database_url, alerts=ALERTS, staff=STAFF)


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with served(create_app(settings, dispatch=False)) as c:
        yield c


async def post(
    client: httpx.AsyncClient, source: str, payload: object, *, signed: bool = True
) -> httpx.Response:
    body = json.dumps(payload).encode()
    headers = {"content-type": "application/json"}
    if signed:
        headers["x-broadcaster-signature"] = signature_of(body, SECRET)
    return await client.post(f"/webhooks/alerts/{source}", content=body, headers=headers)


async def _drafts(sessions: SessionFactory) -> list[Incident]:
    async with sessions() as session:
        return list(await session.exec(select(Incident).order_by(col(Incident.id))))


async def _staff_alerts(sessions: SessionFactory) -> list[Delivery]:
    async with sessions() as session:
        return list(
            await session.exec(select(Delivery).where(Delivery.kind == "alert").order_by(col(Delivery.id)))
        )


async def test_alertmanager_firing_drafts_once_and_alerts_the_staff_once_then_resolved_tells_them(
    client: httpx.AsyncClient, sessions: SessionFactory
) -> None:
    first = await post(client, "alertmanager", alertmanager())
    assert first.status_code == 200, first.text
    (draft,) = await _drafts(sessions)
    assert first.json()["drafted"] == [draft.id]
    assert (draft.status, draft.impact, draft.components) == ("draft", "critical", ["payment"])
    assert draft.title == "Card payments failing for 12% of attempts"
    (alert,) = await _staff_alerts(sessions)
    assert alert.target == STAFF["email"] and f"draft #{draft.id}" in alert.payload

    again = await post(client, "alertmanager", alertmanager())
    assert again.json()["drafted"] == [] and again.json()["updated"] == [draft.id]
    assert len(await _drafts(sessions)) == 1 and len(await _staff_alerts(sessions)) == 1

    resolved = await post(client, "alertmanager", alertmanager("resolved"))
    assert resolved.json()["told"] == [draft.id]
    alerts = await _staff_alerts(sessions)
    assert len(alerts) == 2 and "Monitoring says resolved" in alerts[1].payload
    assert [i.status for i in await _drafts(sessions)] == ["draft"]  # a monitor never resolves anything


async def test_a_wrong_or_missing_signature_is_refused_and_nothing_is_stored(
    client: httpx.AsyncClient, sessions: SessionFactory
) -> None:
    body = json.dumps(alertmanager()).encode()
    forged = {"x-broadcaster-signature": signature_of(body, "not-the-secret")}
    assert (
        await client.post("/webhooks/alerts/alertmanager", content=body, headers=forged)
    ).status_code == 403
    assert (await post(client, "alertmanager", alertmanager(), signed=False)).status_code == 403
    wrong_bearer = {"authorization": "Bearer not-the-secret"}
    assert (
        await client.post("/webhooks/alerts/grafana", content=body, headers=wrong_bearer)
    ).status_code == 403
    assert await _drafts(sessions) == [] and await _staff_alerts(sessions) == []
    async with sessions() as session:
        assert list(await session.exec(select(MonitorAlert))) == []


async def test_grafana_with_a_bearer_token_and_uptime_kuma_down_then_up(
    client: httpx.AsyncClient, sessions: SessionFactory
) -> None:
    body = json.dumps(grafana()).encode()
    bearer = {"authorization": f"Bearer {SECRET}", "content-type": "application/json"}
    response = await client.post("/webhooks/alerts/grafana", content=body, headers=bearer)
    assert response.status_code == 200 and len(response.json()["drafted"]) == 1

    down = await post(client, "uptime-kuma", uptime_kuma(0))
    (kuma_draft,) = down.json()["drafted"]
    incidents = {i.id: i for i in await _drafts(sessions)}
    assert incidents[kuma_draft].components == ["website"]
    assert incidents[kuma_draft].title.startswith("Boutique: connect ECONNREFUSED")
    pending = await post(client, "uptime-kuma", uptime_kuma(2))  # pending: says nothing yet
    assert pending.json()["alerts"] == 0
    up = await post(client, "uptime-kuma", uptime_kuma(1))
    assert up.json()["told"] == [kuma_draft]


async def test_alerts_naming_no_configured_component_are_ignored_and_unknown_sources_are_404(
    client: httpx.AsyncClient, sessions: SessionFactory
) -> None:
    other = {"group": "db-1", "status": "firing", "summary": "replica lag", "component": "warehouse-db"}
    assert (await post(client, "generic", other)).json() == {
        "alerts": 1, "drafted": [], "updated": [], "told": [], "ignored": 1
    }  # fmt: skip
    assert (await post(client, "nagios", other)).status_code == 404
    assert await _drafts(sessions) == [] and await _staff_alerts(sessions) == []


@pytest.mark.parametrize(
    ("source", "payload", "named"),
    [
        ("alertmanager", {"status": "firing", "alerts": []}, "groupKey"),
        ("alertmanager", {**alertmanager(), "status": "exploded"}, "status"),
        ("alertmanager", {**alertmanager(), "alerts": []}, "alerts"),
        ("uptime-kuma", {"heartbeat": {"status": 9}, "monitor": {"id": 1, "name": "x"}}, "heartbeat.status"),
        ("generic", {"group": "g", "status": "firing", "summary": "", "component": "app"}, "summary"),
        ("generic", [1, 2], "body"),
    ],
)
async def test_a_body_of_the_wrong_shape_is_400_naming_the_field(
    client: httpx.AsyncClient, sessions: SessionFactory, source: str, payload: object, named: str
) -> None:
    response = await post(client, source, payload)
    assert response.status_code == 400 and named in response.json()["detail"]
    assert await _drafts(sessions) == []


async def test_a_discarded_draft_lets_the_next_firing_draft_anew(
    client: httpx.AsyncClient, sessions: SessionFactory
) -> None:
    (first,) = (await post(client, "alertmanager", alertmanager())).json()["drafted"]
    async with sessions() as session:
        await discard_draft(session, first)
    (second,) = (await post(client, "alertmanager", alertmanager())).json()["drafted"]
    assert [i.id for i in await _drafts(sessions)] == [second]
    assert len(await _staff_alerts(sessions)) == 2  # the new draft is announced like the first


async def test_the_staff_alert_reaches_the_on_call_mailbox(
    database_url: str, sessions: SessionFactory
) -> None:
    with SmtpPeer() as smtp:
        base = live_settings(database_url, smtp, None)
        settings = make_settings(
            database_url, alerts=ALERTS, staff=STAFF, channels={"email": base.channels.email.model_dump()}
        )
        async with (
            served(create_app(settings, dispatch=False)) as client,
            dispatching(sessions, settings),
        ):
            assert (await post(client, "alertmanager", alertmanager())).status_code == 200

            async def arrived() -> bool:
                return any(STAFF["email"] in to for _, to, _ in smtp.messages)

            await until(arrived)
