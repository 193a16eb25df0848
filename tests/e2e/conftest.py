"""Real protocol peers for end-to-end tests: an SMTP server and a Telegram Bot API."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.peers.smtp import SmtpPeer
from tests.peers.telegram import TelegramPeer


@pytest.fixture
def smtp() -> Iterator[SmtpPeer]:
    with SmtpPeer() as peer:
        yield peer


@pytest.fixture
def telegram() -> Iterator[TelegramPeer]:
    with TelegramPeer() as peer:
        yield peer
