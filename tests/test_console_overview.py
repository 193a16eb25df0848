"""`/console`, the overview: open incidents with the promised next update (overdue ones marked),
drafts, the inbox's counts; the menu follows the role; strangers are sent to sign in."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest

from broadcaster.auth.users import add_user, use_setup_link
from broadcaster.config import Settings
from broadcaster.db import SessionFactory
from broadcaster.models import Incident, utcnow
from broadcaster.web.app import create_app
from tests.conftest import make_settings
from tests.e2e.helpers import draft, open_
from tests.served import served
from tests.staff import bearer, staff_token
from tests.test_inbox_actions import customer_writes, inbound


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(database_url)


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with served(create_app(settings, dispatch=False)) as c:
        c.headers["Accept-Language"] = "en"
        yield c


async def test_the_overview_shows_what_needs_doing_now(
    client: httpx.AsyncClient, sessions: SessionFactory, settings: Settings
) -> None:
    editor = bearer(await staff_token(sessions, "editor"))
    published = await open_(
        sessions, settings, draft("investigating", "Le paiement échoue, désolés.", "Payment fails.")
    )
    async with sessions() as session:
        incident = await session.get(Incident, published.incident.id)
        assert incident is not None
        incident.next_update_at = utcnow() - timedelta(minutes=5)  # the promise is broken
        session.add(Incident(title="Pic de messages", status="draft", impact="major", components=[]))
        await session.commit()
    await customer_writes(sessions, inbound("42:1", "le site est en panne ?"))

    page = await client.get("/console", headers=editor)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    html = page.text
    assert f"#{incident.id} {incident.title}" in html and 'class="card overdue"' in html
    assert "Post an update" in html and "Pic de messages" in html and "Drafts waiting for a decision" in html
    assert "<strong>1</strong> open" in html
    assert 'href="http://127.0.0.1:8080/console/incidents/new"' in html  # an editor may compose


async def test_the_menu_and_the_actions_follow_the_role(
    client: httpx.AsyncClient, sessions: SessionFactory
) -> None:
    viewer = bearer(await staff_token(sessions, "viewer"))
    html = (await client.get("/console", headers=viewer)).text
    assert "New incident" not in html and "Inbox" not in html.split("</nav>")[0]
    assert "No open incident: all is well." in html


async def test_strangers_sign_in_first_and_a_missing_second_factor_comes_first(
    client: httpx.AsyncClient, sessions: SessionFactory
) -> None:
    away = await client.get("/console", follow_redirects=False)
    assert away.status_code == 303 and away.headers["location"].endswith("/login?next=/console")
    added = await add_user(sessions, "ed@shop.example", "Ed", "editor", "en")
    await use_setup_link(sessions, added.setup_secret, "a long enough password", utcnow())
    form = await client.get("/login?next=/console")
    csrf = form.text.split('name="csrf_token" value="')[1].split('"')[0]
    assert 'name="next" value="/console"' in form.text
    signed = await client.post(
        "/login",
        data={
            "email": "ed@shop.example",
            "password": "a long enough password",
            "csrf_token": csrf,
            "next": "/console",
        },
    )
    assert signed.headers["location"].endswith("/account/2fa")  # an editor needs a second factor first
    held = await client.get("/console", follow_redirects=False)
    assert held.status_code == 303 and held.headers["location"].endswith("/account/2fa")


def test_after_sign_in_only_a_console_page_is_a_place_to_go_back_to() -> None:
    from broadcaster.web.staff_pages import back_to

    assert back_to("/console/inbox") == "/console/inbox"
    for elsewhere in (
        "https://evil.example/console",
        "//evil.example",
        "/console//evil",
        "/account",
        "/console\\\\x",
    ):
        assert back_to(elsewhere) == "/console"


async def test_a_maintenance_is_planned_shown_with_its_ladder_and_cancelled(
    client: httpx.AsyncClient, sessions: SessionFactory
) -> None:
    editor = bearer(await staff_token(sessions, "editor"))
    starts = (utcnow() + timedelta(days=4)).astimezone().strftime("%Y-%m-%dT%H:%M%z")
    ends = (utcnow() + timedelta(days=4, hours=2)).astimezone().strftime("%Y-%m-%dT%H:%M%z")
    form = {"title": "Mise à jour du paiement", "starts": starts, "ends": ends, "components": "payment",
            "message_fr": "Le paiement sera coupé deux heures pour une mise à jour."}  # fmt: skip
    planned = await client.post("/console/maintenance", data=form, headers=editor, follow_redirects=False)
    assert planned.status_code == 303, planned.text
    page = (await client.get("/console/maintenance", headers=editor)).text
    assert (
        "Mise à jour du paiement" in page
        and 'class="ladder"' in page
        and "email" in page.split('class="ladder"')[1]
    )
    wrong = await client.post("/console/maintenance", data=form | {"starts": "someday"}, headers=editor)
    alert = wrong.text.split('role="alert" class="error">')[1].split("</p>")[0]
    assert wrong.status_code == 422 and "someday" in alert
    window = int(page.split("/console/maintenance/")[1].split("/")[0])
    cancelled = await client.post(
        f"/console/maintenance/{window}/cancel", headers=editor, follow_redirects=False
    )
    assert cancelled.status_code == 303
    assert "Mise à jour du paiement" not in (await client.get("/console/maintenance", headers=editor)).text


async def test_subscribers_import_shows_every_bad_line_and_writes_nothing_then_erases(
    client: httpx.AsyncClient, sessions: SessionFactory
) -> None:
    editor = bearer(await staff_token(sessions, "editor"))
    bad = "email,locale\nana@example.com,fr\nnot-an-address,fr\nbob@example.com,xx-yy-zz\n"
    refused = await client.post(
        "/console/subscribers/import", files={"file": ("c.csv", bad, "text/csv")}, headers=editor
    )
    assert refused.status_code == 422
    assert "line 3" in refused.text and "line 4" in refused.text and "ana@example.com" not in refused.text
    good = "email,locale,name\nana@example.com,fr,Ana\n"
    imported = await client.post(
        "/console/subscribers/import", files={"file": ("c.csv", good, "text/csv")}, headers=editor
    )
    assert imported.status_code == 200 and "1 / 1 / 0" in imported.text
    listed = (await client.get("/console/subscribers", params={"q": "ana@"}, headers=editor)).text
    assert "ana@example.com" in listed
    person = int(listed.split("/console/subscribers/")[1].split("/")[0])
    erased = await client.post(f"/console/subscribers/{person}/erase", headers=editor, follow_redirects=False)
    assert erased.status_code == 303
    assert "ana@example.com" not in (await client.get("/console/subscribers", headers=editor)).text


async def test_an_admin_adds_a_user_and_reads_the_audit_log(
    client: httpx.AsyncClient, sessions: SessionFactory
) -> None:
    admin, editor = (
        bearer(await staff_token(sessions, "admin")),
        bearer(await staff_token(sessions, "editor")),
    )
    added = await client.post(
        "/console/users", data={"email": "lea@shop.example", "role": "agent"}, headers=admin
    )
    assert added.status_code == 200 and "/setup/" in added.text and "lea@shop.example" in added.text
    assert (await client.get("/console/users", headers=editor)).status_code == 403
    log = (await client.get("/console/audit", params={"object": "user:lea"}, headers=admin)).text
    assert "user.add" in log and "token:admin tests (admin@shop.example)" in log


async def test_an_unknown_incident_is_a_not_found_page(
    client: httpx.AsyncClient, sessions: SessionFactory
) -> None:
    editor = bearer(await staff_token(sessions, "editor"))
    missing = await client.get("/console/incidents/999999", headers=editor)
    assert missing.status_code == 404 and "There is nothing at this address" in missing.text
