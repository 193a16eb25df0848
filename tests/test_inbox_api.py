"""The staff API `/api/v1/inbox`: closed without a token, 401 with a wrong one, JSON only, clear errors."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI
from sqlmodel import select

from broadcaster.compose.render import format_when
from broadcaster.config import Settings
from broadcaster.db import SessionFactory
from broadcaster.models import Conversation, Delivery, Message
from broadcaster.web.inbox_api import inbox_router
from broadcaster.web.problems import install_problem_details
from broadcaster.web.staff_gate import StaffGate
from tests.conftest import make_settings
from tests.e2e.helpers import draft, open_
from tests.served import served
from tests.staff import bearer, staff_token
from tests.test_inbox_actions import customer_writes, inbound

HOSTILE = "<script>alert('x')</script> le site est en panne ?"


def client_for(
    settings: Settings, sessions: SessionFactory
) -> AbstractAsyncContextManager[httpx.AsyncClient]:
    app = FastAPI()
    install_problem_details(app)
    app.include_router(inbox_router(settings, sessions, StaffGate(settings, sessions)))
    return served(app)


@pytest.fixture
async def token(sessions: SessionFactory) -> str:
    return await staff_token(sessions, "agent")


@pytest.fixture
async def anonymous(database_url: str, sessions: SessionFactory) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(make_settings(database_url), sessions) as client:
        yield client


@pytest.fixture
async def api(anonymous: httpx.AsyncClient, token: str) -> httpx.AsyncClient:
    """A client that sends an agent's API token with every request."""
    anonymous.headers.update(bearer(token))
    return anonymous


@pytest.fixture
async def cid(sessions: SessionFactory) -> int:
    (conversation_id,) = await customer_writes(sessions, inbound("42:1", HOSTILE, customer_name="Léa"))
    return conversation_id


ROUTES = [
    ("GET", "/api/v1/inbox", None),
    ("GET", "/api/v1/inbox/{cid}", None),
    ("GET", "/api/v1/inbox/canned", None),
    ("POST", "/api/v1/inbox/{cid}/reply", {"text": "Bonjour", "author": "Camille"}),
    ("POST", "/api/v1/inbox/{cid}/assign", {"assignee": "Camille"}),
    ("POST", "/api/v1/inbox/{cid}/labels", {"add": ["vip"]}),
    ("POST", "/api/v1/inbox/{cid}/close", None),
    ("POST", "/api/v1/inbox/{cid}/reopen", None),
]


async def nothing_changed(sessions: SessionFactory, cid: int) -> None:
    async with sessions() as session:
        assert list(await session.exec(select(Delivery))) == []
        assert list(await session.exec(select(Message).where(Message.direction == "out"))) == []
        conversation = await session.get(Conversation, cid)
        assert conversation is not None
        assert (conversation.status, conversation.assignee, conversation.labels) == ("open", "", [])


async def test_a_viewers_token_reads_no_customer_message_and_changes_nothing(
    anonymous: httpx.AsyncClient, sessions: SessionFactory, cid: int
) -> None:
    viewer = await staff_token(sessions, "viewer")
    for method, path, body in ROUTES:
        response = await anonymous.request(method, path.format(cid=cid), json=body, headers=bearer(viewer))
        assert response.status_code == 403, path
        assert "viewer may not" in response.json()["detail"]
        assert "Léa" not in response.text and "script" not in response.text
    await nothing_changed(sessions, cid)


@pytest.mark.parametrize(
    "spoil",
    [
        lambda token: {},
        lambda token: {"Authorization": "Bearer wrong"},
        lambda token: {"Authorization": f"Bearer {token}x"},
        lambda token: {"Authorization": f"Basic {token}"},
        lambda token: {"Authorization": token},
    ],
)
async def test_a_missing_or_wrong_token_is_401_before_anything_is_read_or_written(
    anonymous: httpx.AsyncClient,
    sessions: SessionFactory,
    cid: int,
    token: str,
    spoil: Callable[[str], dict[str, str]],
) -> None:
    api = anonymous
    for method, path, body in ROUTES:
        response = await api.request(method, path.format(cid=cid), json=body, headers=spoil(token))
        assert response.status_code == 401, path
        assert response.headers["www-authenticate"] == "Bearer"
        assert token not in response.text and "Léa" not in response.text
    malformed = await api.post(
        f"/api/v1/inbox/{cid}/reply", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert malformed.status_code == 401  # authentication comes before parsing the body
    await nothing_changed(sessions, cid)


async def test_the_conversation_comes_back_as_json_with_the_customers_text_verbatim(
    api: httpx.AsyncClient, cid: int
) -> None:
    response = await api.get(f"/api/v1/inbox/{cid}")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert {k: body[k] for k in ("id", "customer_name", "status", "handed_off")} == {
        "id": cid, "customer_name": "Léa", "status": "open", "handed_off": False,
    }  # fmt: skip
    (message,) = body["messages"]
    assert message["text"] == HOSTILE and message["direction"] == "in"
    listed = await api.get("/api/v1/inbox")
    assert listed.status_code == 200 and listed.headers["content-type"] == "application/json"
    assert [c["last_message"]["text"] for c in listed.json()] == [HOSTILE]


async def test_a_reply_is_queued_in_the_customers_thread(
    api: httpx.AsyncClient, sessions: SessionFactory, cid: int
) -> None:
    response = await api.post(
        f"/api/v1/inbox/{cid}/reply", json={"text": "Nous regardons.", "author": "Camille"}
    )
    assert response.status_code == 202, response.text
    answer = response.json()
    assert (answer["author"], answer["delivery_status"], answer["direction"]) == ("Camille", "queued", "out")
    async with sessions() as session:
        (delivery,) = list(await session.exec(select(Delivery)))
    assert delivery.message_id == answer["id"] and delivery.reply["in_reply_to"] == "42:1"
    shown = (await api.get(f"/api/v1/inbox/{cid}")).json()
    assert (shown["status"], shown["handed_off"]) == ("pending", True)
    assert shown["messages"][-1]["delivery_status"] == "queued"


async def test_a_canned_reply_and_the_canned_list_carry_the_current_eta(
    database_url: str, api: httpx.AsyncClient, sessions: SessionFactory
) -> None:
    eta = datetime.now(UTC) + timedelta(hours=2)
    await open_(
        sessions,
        make_settings(database_url),
        draft("investigating", "Le paiement échoue.", "Payment fails.", eta_at=eta),
        force=True,
    )
    (english,) = await customer_writes(sessions, inbound("7:1", "is checkout down?", key="7", language="en"))
    # The clock only: the API reads its own clock, and "tomorrow" may be added near midnight.
    eta_en = format_when(eta, timezone="Europe/Paris", locale="en", now=eta, prep="around")
    canned = await api.get("/api/v1/inbox/canned", params={"locale": "en"})
    assert canned.status_code == 200
    assert eta_en in {p["name"]: p["text"] for p in canned.json()}["eta"]
    answer = await api.post(f"/api/v1/inbox/{english}/reply", json={"canned": "eta", "author": "Camille"})
    assert answer.status_code == 202 and eta_en in answer.json()["text"]


async def test_assign_labels_close_reopen_and_filters(api: httpx.AsyncClient, cid: int) -> None:
    base = f"/api/v1/inbox/{cid}"
    assigned = await api.post(f"{base}/assign", json={"assignee": "Camille"})
    assert assigned.status_code == 200 and assigned.json()["assignee"] == "Camille"
    labelled = await api.post(f"{base}/labels", json={"add": ["VIP", "refund"], "remove": []})
    assert labelled.json()["labels"] == ["refund", "vip"]
    closed = await api.post(f"{base}/close")
    assert (closed.json()["status"], closed.json()["handed_off"]) == ("closed", False)

    async def ids(**params: str | int) -> list[int]:
        response = await api.get("/api/v1/inbox", params=params)
        assert response.status_code == 200, response.text
        return [c["id"] for c in response.json()]

    assert await ids(status="closed", label="vip", assignee="Camille") == [cid]
    assert await ids(status="open") == []
    assert await ids(incident=1) == []
    assert (await api.post(f"{base}/reopen")).json()["status"] == "open"
    assert await ids(status="open", limit=1) == [cid]


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "expected"),
    [
        ("GET", "/api/v1/inbox/999", None, 404, "no conversation #999"),
        ("POST", "/api/v1/inbox/999/reply", {"text": "hi", "author": "C"}, 404, "no conversation #999"),
        ("POST", "/api/v1/inbox/999/close", None, 404, "no conversation #999"),
        ("POST", "/api/v1/inbox/{cid}/reply", {"text": "a", "canned": "eta", "author": "C"}, 400,
         "either the text of the reply or a canned reply"),
        ("POST", "/api/v1/inbox/{cid}/reply", {"canned": "nope", "author": "C"}, 400,
         "no canned reply 'nope' in fr (available: eta,"),
        ("POST", "/api/v1/inbox/{cid}/labels", {"add": ["Bad Label!"]}, 400,
         "label 'Bad Label!' is not allowed"),
        ("GET", "/api/v1/inbox?label=no%20way", None, 400, "label 'no way' is not allowed"),
    ],
)  # fmt: skip
async def test_refused_actions_are_404_or_400_with_the_reason_and_write_nothing(
    api: httpx.AsyncClient,
    sessions: SessionFactory,
    cid: int,
    method: str,
    path: str,
    body: dict[str, object] | None,
    status: int,
    expected: str,
) -> None:
    response = await api.request(method, path.format(cid=cid), json=body)
    assert response.status_code == status, response.text
    assert expected in response.json()["detail"]
    await nothing_changed(sessions, cid)


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("POST", "/api/v1/inbox/{cid}/reply", {"text": "hi", "author": ""}, ["body", "author"]),
        ("POST", "/api/v1/inbox/{cid}/reply", {"text": "x" * 10_001, "author": "C"}, ["body", "text"]),
        ("POST", "/api/v1/inbox/{cid}/reply", {"text": "hi", "author": "C", "html": "<b>"}, ["body", "html"]),
        ("POST", "/api/v1/inbox/{cid}/assign", {}, ["body", "assignee"]),
        ("POST", "/api/v1/inbox/{cid}/labels", {"add": "vip"}, ["body", "add"]),
        ("GET", "/api/v1/inbox?limit=501", None, ["query", "limit"]),
        ("GET", "/api/v1/inbox?status=done", None, ["query", "status"]),
        ("GET", "/api/v1/inbox/abc", None, ["path", "conversation_id"]),
    ],
)
async def test_malformed_requests_are_422_naming_the_field(
    api: httpx.AsyncClient,
    sessions: SessionFactory,
    cid: int,
    method: str,
    path: str,
    body: dict[str, object] | None,
    field: list[str],
) -> None:
    response = await api.request(method, path.format(cid=cid), json=body)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == 422 and problem["instance"] == path.format(cid=cid).split("?")[0]
    assert [error["loc"][:2] for error in problem["errors"]] == [field]
    assert problem["detail"].startswith(".".join(field))
    await nothing_changed(sessions, cid)


@pytest.mark.parametrize("conversation_id", ["99999999999999999999", "0"])
async def test_an_id_no_row_can_have_is_refused_before_any_query(
    api: httpx.AsyncClient, conversation_id: str
) -> None:
    response = await api.get(f"/api/v1/inbox/{conversation_id}")
    assert response.status_code == 422 and "conversation_id" in response.text


@pytest.mark.parametrize("incident", ["9223372036854775808", "0", "-1"])
async def test_an_incident_filter_no_row_can_have_is_a_422_naming_it(
    api: httpx.AsyncClient, incident: str
) -> None:
    response = await api.get("/api/v1/inbox", params={"incident": incident})
    assert response.status_code == 422
    assert [error["field"] for error in response.json()["errors"]] == ["query.incident"]
