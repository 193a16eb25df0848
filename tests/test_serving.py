"""`broadcaster serve`'s uvicorn: access log lines without tokens, and the `[server]` limits, for real."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from broadcaster.config import Settings
from broadcaster.web import create_app
from broadcaster.web.serving import redact_target, serving_config
from tests.conftest import make_settings
from tests.peers.http_server import ServerThread

VERIFY_TOKEN = "fb-verify-token-0123456789abcdefghij"
LINK_TOKEN = "AbCdEf0123456789_link-token"


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def served(settings: Settings) -> ServerThread:
    app = create_app(settings, dispatch=False)
    return ServerThread(app, "broadcaster", config=serving_config(app, settings, "127.0.0.1", 1))


@contextmanager
def access_log() -> Iterator[Lines]:
    """uvicorn's access log lines, as its configured logger emits them (after `serving_config`)."""
    handler = Lines()
    logger = logging.getLogger("uvicorn.access")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


def test_access_log_lines_carry_no_token(database_url: str) -> None:
    settings = make_settings(database_url, channels={"facebook": {"verify_token": VERIFY_TOKEN}})
    server = served(settings)
    with access_log() as access_lines:
        fetch_with_tokens(server)
    logged = "\n".join(access_lines.lines)
    assert len(access_lines.lines) == 4, logged
    assert VERIFY_TOKEN not in logged and LINK_TOKEN not in logged and LINK_TOKEN[5:] not in logged
    assert '"GET /webhooks/facebook?<redacted> HTTP/1.1" 200' in logged
    assert '"POST /unsubscribe/<redacted>/resubscribe HTTP/1.1" 404' in logged


def fetch_with_tokens(server: ServerThread) -> None:
    server.start()
    try:
        with httpx.Client(base_url=server.origin) as client:
            query = {"hub.mode": "subscribe", "hub.verify_token": VERIFY_TOKEN, "hub.challenge": "42"}
            assert client.get("/webhooks/facebook", params=query).text == "42"
            client.get(f"/unsubscribe/{LINK_TOKEN}")
            client.post(f"/unsubscribe/{LINK_TOKEN}/resubscribe")
            client.get(f"/unsubscribe/{LINK_TOKEN[:4]}%{ord(LINK_TOKEN[4]):X}{LINK_TOKEN[5:]}")
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("target", "shown"),
    [
        ("/status", "/status"),
        ("/status?x=1", "/status?<redacted>"),
        ("/unsubscribe/abc", "/unsubscribe/<redacted>"),
        ("/unsubscribe/a/b/c?z", "/unsubscribe/<redacted>?<redacted>"),
        ("/unsubscribe/abc/resubscribe", "/unsubscribe/<redacted>/resubscribe"),
        ("/unsubscribe%2Fabc", "/unsubscribe/<redacted>"),
    ],
)
def test_a_request_target_is_redacted(target: str, shown: str) -> None:
    assert redact_target(target) == shown


def request(sock: socket.socket) -> bytes:
    """One GET /healthz on `sock`, its whole response read (headers, then Content-Length bytes)."""
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    response = b""
    while b"\r\n\r\n" not in response:
        response += sock.recv(65536) or b"\r\n\r\n"
    head, _, body = response.partition(b"\r\n\r\n")
    length = next((int(line.split(b":")[1]) for line in head.lower().split(b"\r\n")
                   if line.startswith(b"content-length:")), 0)  # fmt: skip
    while len(body) < length:
        body += sock.recv(65536) or b"-" * length
    return head


def test_the_server_limits_come_from_the_config(database_url: str) -> None:
    settings = make_settings(database_url, server={"limit_concurrency": 2, "keep_alive_seconds": 1})
    app = create_app(settings, dispatch=False)
    config = serving_config(app, settings, "127.0.0.1", 1)
    assert (config.limit_concurrency, config.timeout_keep_alive) == (2, 1)
    server = ServerThread(app, "broadcaster", config=config)
    server.start()
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as first:
            assert request(first).startswith(b"HTTP/1.1 200")
            with socket.create_connection(("127.0.0.1", server.port), timeout=10) as second:
                assert request(second).startswith(b"HTTP/1.1 503")  # two connections: the limit
            assert first.recv(1) == b""  # the idle keep-alive connection is closed by the server
    finally:
        server.stop()
