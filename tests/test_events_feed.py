"""The event feed of `/api/v1/events`: what changed since the caller last looked, and only what their
role reads."""

from __future__ import annotations

from broadcaster.auth.roles import ROLES
from broadcaster.auth.users import add_user
from broadcaster.db import SessionFactory
from broadcaster.inbox import actions
from broadcaster.web.events_feed import Cursor, EventFeed
from tests.conftest import make_settings
from tests.e2e.helpers import draft, open_
from tests.test_inbox_actions import customer_writes, inbound


async def test_each_role_hears_what_it_may_read_and_nothing_from_before_it_listened(
    database_url: str, sessions: SessionFactory
) -> None:
    settings = make_settings(database_url)
    await add_user(sessions, "before@shop.example", "Before", "viewer")  # before anyone listens
    feeds = {role: EventFeed(sessions, ROLES[role]) for role in ROLES}
    for feed in feeds.values():
        await feed.start_now()

    (cid,) = await customer_writes(sessions, inbound("42:1", "le site est en panne ?"))
    await actions.assign(sessions, cid, "Camille")
    await open_(
        sessions, settings, draft("investigating", "Le paiement échoue, désolés.", "Payment fails, sorry.")
    )
    await add_user(sessions, "lea@shop.example", "Léa", "agent")

    heard = {role: await feed.changes() for role, feed in feeds.items()}
    names = {role: {e.event for e in events} for role, events in heard.items()}
    assert names["admin"] == {"message", "conversation", "incident", "delivery", "account"}
    assert names["editor"] == {"message", "conversation", "incident", "delivery"}
    assert names["agent"] == {"message", "conversation", "incident", "delivery"}
    assert names["viewer"] == {"incident", "delivery"}  # no customer's message, no account
    (message,) = [e.data for e in heard["agent"] if e.event == "message"]
    assert message["conversation_id"] == cid and "text" not in message  # the console fetches the text
    accounts = [e.data["object"] for e in heard["admin"] if e.event == "account"]
    assert accounts == ["user:lea@shop.example"]
    (progress,) = [e.data for e in heard["viewer"] if e.event == "delivery"]
    assert progress["done"] is False and progress["percent"] == 0  # nothing sent: no worker here

    assert await feeds["viewer"].changes() == []  # nothing new, nothing said
    again = EventFeed(sessions, ROLES["admin"], Cursor.parse(str(feeds["admin"].cursor)) or Cursor())
    assert [e.event for e in await again.changes()] == ["delivery"]  # resumed: only the progress again


def test_a_last_event_id_that_is_not_ours_is_ignored() -> None:
    assert Cursor.parse("12.40") == Cursor(12, 40)
    for text in ("", "12", "a.b", "1.2.3", "9" * 50 + ".1", "-1.2"):
        assert Cursor.parse(text) is None
