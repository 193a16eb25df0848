"""Peers shared by the push tests: one Web Push service per module, reset before each test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from channels.push.webpush import generate_vapid_key
from tests.peers.webpush import WebPushEndpoint


@pytest.fixture(scope="module")
def running_push_service() -> Iterator[WebPushEndpoint]:
    with WebPushEndpoint() as endpoint:
        yield endpoint


@pytest.fixture
def push_service(running_push_service: WebPushEndpoint) -> WebPushEndpoint:
    running_push_service.down = False
    running_push_service.redirect_to = ""
    return running_push_service


@pytest.fixture
def vapid_file(tmp_path: Path) -> Path:
    path = tmp_path / "vapid.pem"
    generate_vapid_key(path)
    return path
