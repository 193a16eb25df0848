"""The reply listener against slow and greedy clients: an idle timeout, and sessions per address."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from broadcaster.web.app import inbound_email_listener
from channels.base import InboundMessage
from channels.email.inbound import TOO_MANY_SESSIONS, InboundSmtpServer
from tests.conftest import make_settings

BOUND = 10.0  # seconds: every wait here is bounded


async def ignore(message: InboundMessage) -> None:
    raise AssertionError(f"nothing is sent in these tests: {message!r}")


@pytest.fixture
async def server() -> AsyncIterator[InboundSmtpServer]:
    async with InboundSmtpServer(
        "127.0.0.1", 0, "reply.shop.example", ignore, idle_timeout=0.5, sessions_per_client=2
    ) as listening:
        yield listening


async def connect(server: InboundSmtpServer) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    return reader, writer, await asyncio.wait_for(reader.readline(), BOUND)


async def test_a_third_session_from_one_address_is_told_to_come_back_later(server: InboundSmtpServer) -> None:
    first, second = await connect(server), await connect(server)
    assert first[2].startswith(b"220") and second[2].startswith(b"220")
    reader, writer, line = await connect(server)
    assert line.decode().strip() == TOO_MANY_SESSIONS
    assert await asyncio.wait_for(reader.read(), BOUND) == b""  # and disconnected
    writer.close()

    first[1].write(b"QUIT\r\n")
    assert (await asyncio.wait_for(first[0].readline(), BOUND)).startswith(b"221")
    # asyncio runs the listener's connection_lost before it closes the socket: EOF means counted out
    assert await asyncio.wait_for(first[0].read(), BOUND) == b""
    reader, writer, line = await connect(server)
    assert line.startswith(b"220")
    for _reader, other, _line in (first, second, (reader, writer, line)):
        other.close()


async def test_a_silent_client_is_disconnected_after_the_idle_timeout(server: InboundSmtpServer) -> None:
    reader, writer, greeting = await connect(server)
    assert greeting.startswith(b"220")
    writer.write(b"EHLO client.example\r\n")  # then nothing more
    answered = await asyncio.wait_for(reader.read(), BOUND)  # until the listener hangs up
    assert answered.startswith(b"250") and reader.at_eof()
    writer.close()


def test_the_listener_takes_its_limits_from_the_config(database_url: str) -> None:
    email = {"inbound_enabled": True, "inbound_idle_timeout_seconds": 42.5, "inbound_sessions_per_client": 3}
    settings = make_settings(database_url, channels={"email": email})
    listener = inbound_email_listener(settings, sessions=None)  # type: ignore[arg-type]  # not started
    assert listener is not None
    assert (listener.idle_timeout, listener.sessions_per_client) == (42.5, 3)
