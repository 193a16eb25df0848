"""Every kind of change writes its audit row, and no row ever holds a password, a token, a code or
a secret — checked by making each change for real and reading the whole log."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime, timedelta

import pyotp
from sqlmodel import select

from broadcaster.auth import tokens, users
from broadcaster.auth.audit import Actor, acting_as
from broadcaster.auth.second_factor import begin_enrolment, confirm_enrolment
from broadcaster.auth.sign_in import SignInRefused, Throttle, sign_in
from broadcaster.db import SessionFactory
from broadcaster.models import AuditEvent, Subscriber, utcnow
from broadcaster.web.app import create_app
from tests.conftest import make_settings
from tests.served import served
from tests.staff import bearer
from tests.test_inbox_actions import customer_writes, inbound
from tests.test_write_api import CSV, OPEN

PASSWORD = "a long and secret passphrase"
THROTTLE = Throttle(5, 20, timedelta(minutes=15))


async def test_each_change_is_recorded_once_with_who_and_no_secret(
    database_url: str, sessions: SessionFactory
) -> None:
    secrets: list[str] = [PASSWORD]
    added = await users.add_user(sessions, "camille@shop.example", "Camille", "admin", "fr")
    secrets.append(added.setup_secret)
    await users.use_setup_link(sessions, added.setup_secret, PASSWORD, utcnow())
    assert added.user.id is not None
    enrolment = await begin_enrolment(sessions, added.user.id, "Maison Exemple")
    secrets.append(enrolment.secret)
    now = datetime(2026, 12, 6, 3, 0, tzinfo=UTC)
    codes = await confirm_enrolment(sessions, added.user.id, pyotp.TOTP(enrolment.secret).at(now), now)
    secrets += codes
    with acting_as(Actor("anonymous", "203.0.113.9")):
        for password in ("wrong password!", PASSWORD):
            with contextlib.suppress(SignInRefused):  # the wrong one is refused, the right one passes
                await sign_in(sessions, "camille@shop.example", password, codes[0], address="203.0.113.9",
                              throttle=THROTTLE, require_2fa=frozenset({"admin"}), now=now)  # fmt: skip
    issued = await tokens.create_token(sessions, "camille@shop.example", "deploy")
    secrets += [issued.plaintext, issued.plaintext.rsplit("_", 1)[1]]
    auth = bearer(issued.plaintext)

    settings = make_settings(database_url, channels={"blog": {"enabled": True}})
    async with served(create_app(settings, dispatch=False)) as client:
        assert (await client.post("/api/v1/subscribers/import", content=CSV, headers=auth)).status_code == 200
        opened = (await client.post("/api/v1/incidents", json=OPEN, headers=auth)).json()
        incident = opened["incident_id"]
        await client.post(
            f"/api/v1/incidents/{incident}/updates", json={"status": "identified"}, headers=auth
        )
        await client.post(f"/api/v1/updates/{opened['update_id']}/requeue", json={}, headers=auth)
        await client.post(
            f"/api/v1/incidents/{incident}/resolve", json={"message": "C'est réparé, merci."}, headers=auth
        )
        draft = (
            await client.post(
                f"/api/v1/incidents/{incident}/postmortem/draft",
                json={"cause": "Un disque plein.", "changes": "Une alerte."},
                headers=auth,
            )
        ).json()
        await client.put(
            f"/api/v1/incidents/{incident}/postmortem", json={"markdown": draft["markdown"]}, headers=auth
        )
        await client.post(
            f"/api/v1/incidents/{incident}/postmortem/publish", json={"force": True}, headers=auth
        )
        starts = utcnow() + timedelta(days=3)
        window = (await client.post("/api/v1/maintenance", json={
            "title": "Mise à jour", "starts_at": starts.isoformat(),
            "ends_at": (starts + timedelta(hours=1)).isoformat(), "components": ["payment"],
            "message": "Le paiement sera coupé une heure pour une mise à jour.",
        }, headers=auth)).json()  # fmt: skip
        later = {
            "starts_at": (starts + timedelta(days=1)).isoformat(),
            "ends_at": (starts + timedelta(days=1, hours=1)).isoformat(),
        }
        await client.post(f"/api/v1/maintenance/{window['id']}/reschedule", json=later, headers=auth)
        await client.post(f"/api/v1/maintenance/{window['id']}/cancel", headers=auth)
        (cid,) = await customer_writes(sessions, inbound("42:1", "le site est en panne ?"))
        base = f"/api/v1/inbox/{cid}"
        await client.post(f"{base}/reply", json={"text": "Nous regardons."}, headers=auth)
        await client.post(f"{base}/assign", json={"assignee": "Camille"}, headers=auth)
        await client.post(f"{base}/labels", json={"add": ["vip"]}, headers=auth)
        await client.post(f"{base}/close", headers=auth)
        await client.post(f"{base}/reopen", headers=auth)
        async with sessions() as session:
            ana = (await session.exec(select(Subscriber).where(Subscriber.name == "Ana"))).one()
        assert (await client.delete(f"/api/v1/subscribers/{ana.id}", headers=auth)).status_code == 200

    await users.add_user(sessions, "lea@shop.example", "Léa", "agent")
    await users.set_role(sessions, "lea@shop.example", "editor")
    await users.set_disabled(sessions, "lea@shop.example", True)
    secrets.append((await users.reset_password(sessions, "lea@shop.example")).setup_secret)
    await users.reset_second_factor(sessions, "camille@shop.example")
    assert issued.token.id is not None
    await tokens.revoke_token(sessions, issued.token.id)

    async with sessions() as session:
        events = list(await session.exec(select(AuditEvent).order_by(AuditEvent.id)))
    actions = [e.action for e in events]
    for expected in (
        "user.add", "user.set_password", "user.enrol_2fa", "login.failed", "login", "token.create",
        "subscribers.import", "incident.open", "incident.update", "deliveries.requeue", "incident.resolve",
        "postmortem.save", "postmortem.publish", "maintenance.schedule", "maintenance.reschedule",
        "maintenance.cancel", "inbox.reply", "inbox.assign", "inbox.label", "inbox.close", "inbox.reopen",
        "subscribers.erase", "user.set_role", "user.disable", "user.reset_password", "user.reset_2fa",
        "token.revoke",
    ):  # fmt: skip
        assert expected in actions, expected
    api_made = [
        e for e in events if e.action.startswith(("incident.", "inbox.", "maintenance.", "postmortem."))
    ]
    assert {e.actor for e in api_made} == {"token:deploy (camille@shop.example)"}
    (failed,) = [e for e in events if e.action == "login.failed"]
    assert (failed.actor, failed.address) == ("anonymous", "203.0.113.9")
    for event in events:
        row = " ".join((event.actor, event.address, event.action, event.object, event.summary))
        for secret in secrets:
            assert secret not in row, (event.action, secret)
        assert "\n" not in event.summary
