"""The staff API as a script or the console uses it, against a real `serve` (uvicorn) and the real
SMTP and Bot API peers: open (idempotent) → update → resolve over HTTP, problem+json refusals,
and the event stream following the deliveries to 100 %."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import httpx

from broadcaster.db import SessionFactory
from broadcaster.web import create_app
from broadcaster.web.serving import serving_config
from tests.e2e.helpers import live_settings, people, subscribe
from tests.peers.http_server import ServerThread
from tests.peers.smtp import SmtpPeer
from tests.peers.telegram import TelegramPeer
from tests.staff import bearer, staff_token

FR = "Le paiement par carte échoue pour une partie des clients. Nous sommes désolés, nous enquêtons."
EN = "Card payment fails for some customers. We are sorry and investigating."
OPEN = {
    "title": "Paiement indisponible", "title_translations": {"en": "Payment unavailable"},
    "impact": "major", "components": ["payment"], "message": FR, "translations": {"en": EN},
    "alternative": "Commandez par téléphone au 01 23 45 67 89.",
    "alternative_translations": {"en": "Order by phone on +33 1 23 45 67 89."},
}  # fmt: skip


@dataclass
class Stream:
    """Server-sent events read as they come: (event, data) pairs."""

    events: list[tuple[str, dict[str, object]]] = field(default_factory=list)
    listening: asyncio.Event = field(default_factory=asyncio.Event)

    async def read(self, response: httpx.Response) -> None:
        event = ""
        async for line in response.aiter_lines():
            if line.startswith(": listening"):
                self.listening.set()
            elif line.startswith("event:"):
                event = line.partition(":")[2].strip()
            elif line.startswith("data:"):
                self.events.append((event, json.loads(line.partition(":")[2])))

    def of(self, name: str) -> list[dict[str, object]]:
        return [data for event, data in self.events if event == name]


async def wait_until(condition: Callable[[], object], seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert condition()


@contextlib.asynccontextmanager
async def streaming(client: httpx.AsyncClient, token: str) -> AsyncIterator[Stream]:
    stream = Stream()
    async with client.stream("GET", "/api/v1/events", headers=bearer(token)) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        reader = asyncio.create_task(stream.read(response))
        await asyncio.wait_for(stream.listening.wait(), 10)
        try:
            yield stream
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, httpx.ReadError):
                await reader


async def test_open_update_resolve_over_http_with_the_stream_following_every_delivery(
    database_url: str, sessions: SessionFactory, smtp: SmtpPeer, telegram: TelegramPeer
) -> None:
    settings = live_settings(database_url, smtp, telegram)
    await subscribe(sessions, settings, people(12))  # 6 addresses, 6 chats
    editor, agent, admin = [await staff_token(sessions, role) for role in ("editor", "agent", "admin")]
    app = create_app(settings)
    server = ServerThread(app, "broadcaster", config=serving_config(app, settings, "127.0.0.1", 1))
    server.start()
    try:
        async with (
            httpx.AsyncClient(base_url=server.origin, timeout=30) as client,
            streaming(client, editor) as stream,
            streaming(client, agent) as agents_stream,
        ):
            key = {"Idempotency-Key": "3am-payment-outage-1"}
            opened = await client.post("/api/v1/incidents", json=OPEN, headers=bearer(editor) | key)
            assert opened.status_code == 201, opened.text
            incident_id, first_update = opened.json()["incident_id"], opened.json()["update_id"]
            queued = opened.json()["deliveries"]
            assert (queued["email"], queued["telegram"]) == (6, 7)  # 6 chats + the channel post
            assert queued["twitter"] == 1  # in capture mode (no credentials): stored, not sent

            again = await client.post("/api/v1/incidents", json=OPEN, headers=bearer(editor) | key)
            assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
            assert (again.json()["incident_id"], again.json()["update_id"]) == (incident_id, first_update)
            other = await client.post(
                "/api/v1/incidents", json=OPEN | {"title": "Autre"}, headers=bearer(editor) | key
            )
            assert other.status_code == 422 and other.headers["content-type"] == "application/problem+json"
            assert other.json()["errors"][0]["field"] == "header.idempotency-key"

            def done(update_id: object) -> bool:
                return any(d["update_id"] == update_id and d["done"] for d in stream.of("delivery"))

            await wait_until(lambda: done(first_update))
            (last,) = [d for d in stream.of("delivery") if d["update_id"] == first_update and d["done"]]
            assert last["percent"] == 100 and last["total"] == sum(queued.values())
            channels = last["channels"]
            assert isinstance(channels, dict)
            assert (channels["email"], channels["telegram"]) == ({"sent": 6}, {"sent": 7})
            assert channels["twitter"] == {"captured": 1}
            assert len(smtp.messages) == 6 and len(telegram.texts("@shop_status")) == 1
            assert [e["action"] for e in stream.of("incident")] == ["incident.open"]

            updated = await client.post(
                f"/api/v1/incidents/{incident_id}/updates",
                json={"status": "identified", "message": "La cause est trouvée, un correctif est en cours."},
                headers=bearer(editor),
            )
            assert updated.status_code == 201, updated.text
            await wait_until(lambda: done(updated.json()["update_id"]))
            resolved = await client.post(
                f"/api/v1/incidents/{incident_id}/resolve",
                json={"message": "Le paiement fonctionne de nouveau. Merci de votre patience."},
                headers=bearer(editor),
            )
            assert resolved.status_code == 201, resolved.text
            await wait_until(lambda: done(resolved.json()["update_id"]))
            assert len(smtp.messages) == 18 and len(telegram.texts("@shop_status")) == 3

            timeline = (await client.get(f"/api/v1/incidents/{incident_id}", headers=bearer(agent))).json()
            assert [u["status"] for u in timeline["updates"]] == ["investigating", "identified", "resolved"]
            assert timeline["status"] == "resolved" and timeline["deliveries"]["email"] == {"sent": 18}
            assert [u["author"] for u in timeline["updates"]] == ["Editor"] * 3

            await wait_until(lambda: len(agents_stream.of("incident")) == 3)
            agents_events = [e["action"] for e in agents_stream.of("incident")]
            assert agents_events == ["incident.open", "incident.update", "incident.resolve"]
            assert stream.of("account") == [] and agents_stream.of("account") == []

            audit = (await client.get("/api/v1/audit?object=incident:", headers=bearer(admin))).json()
            assert [(e["action"], e["actor"]) for e in reversed(audit)] == [
                ("incident.open", "token:editor tests (editor@shop.example)"),
                ("incident.update", "token:editor tests (editor@shop.example)"),
                ("incident.resolve", "token:editor tests (editor@shop.example)"),
            ]
    finally:
        server.stop()


async def test_refusals_are_problem_documents_naming_what_is_wrong(
    database_url: str, sessions: SessionFactory, smtp: SmtpPeer
) -> None:
    settings = live_settings(database_url, smtp, None)
    editor, agent = await staff_token(sessions, "editor"), await staff_token(sessions, "agent")
    app = create_app(settings, dispatch=False)
    server = ServerThread(app, "broadcaster", config=serving_config(app, settings, "127.0.0.1", 1))
    server.start()
    try:
        async with httpx.AsyncClient(base_url=server.origin, timeout=30) as client:
            blame = OPEN | {"message": "Le paiement échoue. Vérifiez votre connexion avant de réessayer."}
            refused = await client.post("/api/v1/incidents", json=blame, headers=bearer(editor))
            assert (
                refused.status_code == 422 and refused.headers["content-type"] == "application/problem+json"
            )
            assert "blame" in [e["rule"] for e in refused.json()["errors"]]
            assert "force_reason" in refused.json()["detail"]
            forced = await client.post(
                "/api/v1/incidents", json=blame | {"force": True, "force_reason": "legal's wording"},
                headers=bearer(editor),
            )  # fmt: skip
            assert forced.status_code == 201
            unknown = await client.post(
                "/api/v1/incidents/999999/updates", json={"message": "x"}, headers=bearer(editor)
            )
            assert (
                unknown.status_code == 404
                and unknown.json()["instance"] == "/api/v1/incidents/999999/updates"
            )
            missing = await client.post("/api/v1/incidents", json={"title": "x"}, headers=bearer(editor))
            assert missing.status_code == 422
            assert {e["field"] for e in missing.json()["errors"]} == {"body.components"}
            agents = await client.post("/api/v1/incidents", json=OPEN, headers=bearer(agent))
            assert agents.status_code == 403 and "agent may not" in agents.json()["detail"]
            preview = await client.post("/api/v1/preview", json=blame, headers=bearer(agent))
            assert preview.status_code == 200
            assert "blame" in [f["rule"] for f in preview.json()["findings"]]
            assert set(preview.json()["renders"]) >= {"email", "telegram"}
    finally:
        server.stop()
