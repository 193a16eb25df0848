"""The rest of the write API over HTTP: subscribers (search, import all-or-nothing, export, the GDPR
erase), maintenance, deliveries and requeue, captured messages, postmortems — each through the
CLI's functions, refused as problem documents, and only to the roles that may."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from sqlmodel import select

from broadcaster.config import Settings
from broadcaster.db import SessionFactory
from broadcaster.models import AuditEvent, Conversation, Subscriber, Subscription, utcnow
from broadcaster.web.app import create_app
from tests.conftest import make_settings
from tests.served import served
from tests.staff import bearer, staff_token
from tests.test_inbox_actions import customer_writes, inbound

CSV = "email,telegram_chat_id,locale,components,name\nana@example.com,,fr,payment,Ana\n,4242,en,,Bob\n"
OPEN = {
    "title": "Paiement indisponible", "impact": "major", "components": ["payment"],
    "message": "Le paiement échoue pour une partie des clients. Nous sommes désolés, nous enquêtons.",
    "translations": {"en": "Card payment fails for some customers. We are sorry and investigating."},
}  # fmt: skip


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(database_url, channels={"blog": {"enabled": True}})


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with served(create_app(settings, dispatch=False)) as c:
        yield c


async def test_subscribers_import_search_export_and_erase(
    client: httpx.AsyncClient, sessions: SessionFactory
) -> None:
    editor, agent = (
        bearer(await staff_token(sessions, "editor")),
        bearer(await staff_token(sessions, "agent")),
    )
    bad = CSV + "not-an-address,,fr,,Eve\n,,xx,,Nobody\n"
    refused = await client.post("/api/v1/subscribers/import", content=bad, headers=editor)
    assert refused.status_code == 422 and refused.headers["content-type"] == "application/problem+json"
    assert [e["field"] for e in refused.json()["errors"]] == ["line 4", "line 5"]
    async with sessions() as session:
        assert list(await session.exec(select(Subscription))) == []  # all or nothing

    imported = await client.post("/api/v1/subscribers/import", content=CSV, headers=editor)
    assert imported.status_code == 200 and imported.json()["subscriptions"] == 2
    assert (await client.get("/api/v1/subscribers", headers=agent)).status_code == 403

    found = (await client.get("/api/v1/subscribers", params={"q": "ANA@"}, headers=editor)).json()
    assert [s["address"] for s in found["subscriptions"]] == ["ana@example.com"]
    first = (await client.get("/api/v1/subscribers", params={"limit": 1}, headers=editor)).json()
    after = await client.get("/api/v1/subscribers", params={"after": first["next"]}, headers=editor)
    assert [s["address"] for s in after.json()["subscriptions"]] == ["4242"] and after.json()["next"] is None

    exported = await client.get("/api/v1/subscribers/export.csv", headers=editor)
    assert exported.headers["content-type"].startswith("text/csv")
    again = await client.post("/api/v1/subscribers/import", content=exported.text, headers=editor)
    assert again.json() == {"subscribers": 0, "subscriptions": 0, "already_subscribed": 2}

    added = await client.post(
        "/api/v1/subscribers",
        json={"addresses": {"email": "chloe@example.com"}, "locale": "en"},
        headers=editor,
    )
    assert added.status_code == 201 and added.json()["subscriptions"] == 1
    wrong = await client.post("/api/v1/subscribers", json={"addresses": {"email": "x"}}, headers=editor)
    assert wrong.status_code == 422 and "email" in wrong.json()["detail"]

    (bob_chat,) = await customer_writes(sessions, inbound("4242:1", "toujours en panne ?", key="4242"))
    async with sessions() as session:
        bob = (await session.exec(select(Subscriber).where(Subscriber.name == "Bob"))).one()
    erased = await client.delete(f"/api/v1/subscribers/{bob.id}", headers=editor)
    assert erased.status_code == 200
    assert erased.json() | {"subscriber_id": 0} == {
        "subscriber_id": 0, "subscriptions": 1, "deliveries": 0, "captured": 0,
        "conversations": 1, "messages": 1, "inbound_records": 1,
    }  # fmt: skip
    async with sessions() as session:
        assert await session.get(Conversation, bob_chat) is None
        assert [s.address for s in await session.exec(select(Subscription))] == [
            "ana@example.com",
            "chloe@example.com",
        ]
        (row,) = await session.exec(select(AuditEvent).where(AuditEvent.action == "subscribers.erase"))
    assert "4242" not in row.summary and row.object == f"subscriber:{bob.id}"
    assert (await client.delete(f"/api/v1/subscribers/{bob.id}", headers=editor)).status_code == 404


async def test_maintenance_is_scheduled_moved_and_called_off_over_http(
    client: httpx.AsyncClient, sessions: SessionFactory
) -> None:
    editor = bearer(await staff_token(sessions, "editor"))
    starts = utcnow() + timedelta(days=5)
    body = {
        "title": "Mise à jour du paiement", "starts_at": starts.isoformat(),
        "ends_at": (starts + timedelta(hours=2)).isoformat(), "components": ["payment"],
        "message": "Le paiement sera indisponible pendant deux heures pour une mise à jour.",
    }  # fmt: skip
    planned = await client.post("/api/v1/maintenance", json=body, headers=editor)
    assert planned.status_code == 201, planned.text
    window = planned.json()
    assert window["status"] == "scheduled" and window["notices"]
    assert [m["id"] for m in (await client.get("/api/v1/maintenance", headers=editor)).json()] == [
        window["id"]
    ]
    moved = await client.post(
        f"/api/v1/maintenance/{window['id']}/reschedule",
        json={
            "starts_at": (starts + timedelta(days=1)).isoformat(),
            "ends_at": (starts + timedelta(days=1, hours=2)).isoformat(),
        },
        headers=editor,
    )
    assert moved.status_code == 200 and moved.json()["told"] is False  # nobody had been told yet
    early = await client.post(f"/api/v1/maintenance/{window['id']}/complete", headers=editor)
    assert early.status_code == 422 and "has not started" in early.json()["detail"]
    cancelled = await client.post(f"/api/v1/maintenance/{window['id']}/cancel", headers=editor)
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    past = body | {"starts_at": (utcnow() - timedelta(hours=1)).isoformat()}
    assert (await client.post("/api/v1/maintenance", json=past, headers=editor)).status_code == 422


async def test_deliveries_captured_requeue_and_the_postmortem_over_http(
    client: httpx.AsyncClient, sessions: SessionFactory
) -> None:
    editor, viewer = (
        bearer(await staff_token(sessions, "editor")),
        bearer(await staff_token(sessions, "viewer")),
    )
    await client.post("/api/v1/subscribers/import", content=CSV, headers=editor)
    opened = (await client.post("/api/v1/incidents", json=OPEN, headers=editor)).json()
    incident, update = opened["incident_id"], opened["update_id"]

    report = (
        await client.get(
            f"/api/v1/incidents/{incident}/deliveries", params={"status": "pending"}, headers=editor
        )
    ).json()
    assert report["by_channel"]["email"] == {"pending": 1} and {r["target"] for r in report["rows"]} >= {
        "ana@example.com"
    }
    seen = (
        await client.get(
            f"/api/v1/incidents/{incident}/deliveries", params={"status": "pending"}, headers=viewer
        )
    ).json()
    assert seen["rows"] and all("target" not in r for r in seen["rows"])  # a viewer reads no address
    dry = await client.post(f"/api/v1/updates/{update}/requeue", json={"dry_run": True}, headers=editor)
    assert dry.status_code == 200 and dry.json()["dry_run"] is True
    assert (
        await client.post(f"/api/v1/updates/{update}/requeue", json={}, headers=viewer)
    ).status_code == 403
    unknown = await client.post("/api/v1/updates/999999/requeue", json={}, headers=editor)
    assert unknown.status_code == 404
    assert (
        await client.get("/api/v1/captured", params={"channel": "pigeon"}, headers=editor)
    ).status_code == 422

    resolved = await client.post(
        f"/api/v1/incidents/{incident}/resolve",
        json={"message": "Le paiement fonctionne de nouveau. Merci de votre patience."}, headers=editor,
    )  # fmt: skip
    assert resolved.status_code == 201
    drafted = (
        await client.post(f"/api/v1/incidents/{incident}/postmortem/draft", json={}, headers=editor)
    ).json()
    assert drafted["missing"]  # the cause and what we change are still to write
    saved = await client.put(
        f"/api/v1/incidents/{incident}/postmortem", json={"markdown": drafted["markdown"]}, headers=editor
    )
    assert saved.status_code == 200
    held = await client.post(f"/api/v1/incidents/{incident}/postmortem/publish", json={}, headers=editor)
    assert held.status_code == 422 and "placeholder" in held.json()["detail"]
    posted = await client.post(
        f"/api/v1/incidents/{incident}/postmortem/publish", json={"force": True}, headers=editor
    )
    assert posted.status_code == 201 and posted.json()["deliveries"] == {"blog": 1}


async def test_an_admin_manages_users_and_tokens_over_http(
    client: httpx.AsyncClient, sessions: SessionFactory
) -> None:
    admin, editor = (
        bearer(await staff_token(sessions, "admin")),
        bearer(await staff_token(sessions, "editor")),
    )
    created = await client.post(
        "/api/v1/users", json={"email": "Lea@Shop.Example", "role": "agent"}, headers=admin
    )
    assert created.status_code == 201 and created.json()["email"] == "lea@shop.example"
    assert "/setup/" in created.json()["setup_url"]
    assert (
        await client.post("/api/v1/users", json={"email": "x@shop.example", "role": "agent"}, headers=editor)
    ).status_code == 403
    duplicate = await client.post(
        "/api/v1/users", json={"email": "lea@shop.example", "role": "agent"}, headers=admin
    )
    assert duplicate.status_code == 422 and "already" in duplicate.json()["detail"]
    promoted = await client.patch("/api/v1/users/lea@shop.example", json={"role": "editor"}, headers=admin)
    assert promoted.json()["role"] == "editor"
    reset = await client.post("/api/v1/users/lea@shop.example/reset-password", headers=admin)
    assert reset.status_code == 200 and reset.json()["setup_url"] != created.json()["setup_url"]
    assert (await client.post("/api/v1/users/lea@shop.example/reset-2fa", headers=admin)).json()[
        "two_factor"
    ] is False
    assert (
        await client.post("/api/v1/users/nobody@shop.example/reset-2fa", headers=admin)
    ).status_code == 404

    issued = await client.post(
        "/api/v1/tokens", json={"email": "lea@shop.example", "name": "bot", "role": "viewer"}, headers=admin
    )
    assert issued.status_code == 201 and issued.json()["token"].startswith("bc_")
    wider = await client.post(
        "/api/v1/tokens", json={"email": "lea@shop.example", "name": "x", "role": "admin"}, headers=admin
    )
    assert wider.status_code == 422 and "wider" in wider.json()["detail"]
    listed = (await client.get("/api/v1/tokens", params={"owner": "lea@shop.example"}, headers=admin)).json()
    assert [t["name"] for t in listed] == ["bot"] and "token" not in listed[0]
    assert (await client.get("/api/v1/me", headers=bearer(issued.json()["token"]))).json()["permissions"] == [
        "incidents:read"
    ]
    revoked = await client.delete(f"/api/v1/tokens/{issued.json()['id']}", headers=admin)
    assert revoked.status_code == 200 and revoked.json()["revoked_at"]
    assert (await client.get("/api/v1/me", headers=bearer(issued.json()["token"]))).status_code == 401
