"""X mentions and DMs polled with a cursor kept in the database: a restart neither misses nor repeats."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlmodel import select

from broadcaster.db import SessionFactory
from broadcaster.inbox.inbound import Poller, load_cursor
from broadcaster.models import InboundRecord
from channels.twitter.adapter import TwitterChannel
from channels.twitter.settings import TwitterSettings
from tests.peers.x_api import XApiPeer


@pytest.fixture
def x_api() -> Iterator[XApiPeer]:
    with XApiPeer() as peer:
        yield peer


def poller_for(sessions: SessionFactory, channel: TwitterChannel) -> Poller:
    polls = {"twitter:mentions": channel.poll_mentions, "twitter:dms": channel.poll_dms}
    return Poller(sessions, polls, interval=60)


async def stored(sessions: SessionFactory) -> list[InboundRecord]:
    async with sessions() as session:
        return list(await session.exec(select(InboundRecord)))


async def test_mentions_and_dms_are_stored_once_across_a_restart(
    sessions: SessionFactory, x_api: XApiPeer
) -> None:
    settings = TwitterSettings(**x_api.credentials, api_base_url=x_api.base_url, ca_file=x_api.ca_file)
    x_api.add_mention("@maison_exemple le site est en panne ?")
    x_api.add_dm("Bonjour, mon paiement a été refusé, c'est normal ?")
    first = TwitterChannel(settings)
    try:
        assert await poller_for(sessions, first).poll_once() == 2
        assert await poller_for(sessions, first).poll_once() == 0  # nothing new, nothing repeated
    finally:
        await first.aclose()
    cursor = await load_cursor(sessions, "twitter:mentions")
    assert cursor

    x_api.add_mention("@maison_exemple toujours en panne ??", username="client_2", name="Alex")
    restarted = TwitterChannel(settings)  # a new process: only the database remembers
    try:
        assert await poller_for(sessions, restarted).poll_once() == 1
    finally:
        await restarted.aclose()
    records = await stored(sessions)
    assert sorted(r.text for r in records) == sorted([
        "@maison_exemple le site est en panne ?",
        "Bonjour, mon paiement a été refusé, c'est normal ?",
        "@maison_exemple toujours en panne ??",
    ])  # fmt: skip
    assert {r.channel for r in records} == {"twitter"}
    assert any(r.customer_handle == "@client_2" for r in records)


async def test_rate_limited_poll_waits_and_keeps_the_cursor(
    sessions: SessionFactory, x_api: XApiPeer
) -> None:
    settings = TwitterSettings(**x_api.credentials, api_base_url=x_api.base_url, ca_file=x_api.ca_file)
    x_api.add_mention("@maison_exemple ça marche ?")
    channel = TwitterChannel(settings)
    try:
        x_api.rate_limit_next(5, reset_in=120)
        assert await poller_for(sessions, channel).poll_once() == 0
        assert await load_cursor(sessions, "twitter:mentions") == ""
        assert await stored(sessions) == []
    finally:
        await channel.aclose()
