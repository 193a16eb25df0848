"""What `broadcaster serve` pulls rather than receives: X mentions and DMs, a reply mailbox over
IMAP, and Telegram `getUpdates` for setups without a public URL (`serve --telegram-polling`).

Each source is a `Poller` with its cursor in the database, so a restart neither misses nor
repeats a message; `on_stored` nudges the inbox filer as soon as something new is committed.
Each is elected: on several nodes one polls it, the others stand by (`election.DeploymentLock`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from broadcaster.config import Settings
from broadcaster.db import SessionFactory
from broadcaster.delivery.runtimes import ChannelRuntime
from broadcaster.election import DeploymentLock, poller_lock_key, poller_lock_name
from broadcaster.inbox.inbound import Poller, reply_address_exists, reply_address_for
from broadcaster.loop_health import LoopHealth
from channels.email.imap import ImapMailbox
from channels.email.parse import ReplyAddress
from channels.telegram.polling import TelegramUpdates
from channels.twitter.adapter import TwitterChannel

__all__ = ["Pulled", "build_pollers"]


@dataclass(slots=True)
class Pulled:
    """The pollers to run, and the clients to close when they stop."""

    pollers: list[Poller] = field(default_factory=list)
    long_polls: list[Poller] = field(default_factory=list)  # cancelled at shutdown: they block ~25 s
    clients: list[ImapMailbox | TelegramUpdates] = field(default_factory=list)

    @asynccontextmanager
    async def running(self, health: LoopHealth) -> AsyncIterator[None]:
        """Every poller runs, supervised by `health`, until the block ends; then the pollers stop
        (a long poll is cancelled: nothing is lost, updates are confirmed by the next offset) and
        their clients close."""
        stop = asyncio.Event()
        polls = [asyncio.create_task(health.supervise(p.name, p.run, stop)) for p in self.pollers]
        long_polls = [asyncio.create_task(health.supervise(p.name, p.run, stop)) for p in self.long_polls]
        try:
            yield
        finally:
            stop.set()
            for task in long_polls:
                task.cancel()
            await asyncio.gather(*long_polls, return_exceptions=True)
            await asyncio.gather(*polls)
            for client in self.clients:
                await client.aclose()


def build_pollers(
    settings: Settings,
    sessions: SessionFactory,
    runtimes: Mapping[str, ChannelRuntime],
    *,
    telegram_polling: bool = False,
    on_stored: Callable[[], None] | None = None,
) -> Pulled:
    pulled = Pulled()
    longest = settings.dispatch.max_pause_seconds
    twitter = runtimes.get("twitter")
    if twitter is not None and twitter.live and isinstance(twitter.channel, TwitterChannel):
        polls = {"twitter:mentions": twitter.channel.poll_mentions, "twitter:dms": twitter.channel.poll_dms}
        pulled.pollers.append(
            Poller(sessions, polls, settings.channels.twitter.poll_interval_seconds, on_stored, longest,
                   _lock(settings, polls))
        )  # fmt: skip
    email = settings.channels.email
    if email.imap_enabled:

        async def known(address: ReplyAddress) -> bool:
            return await reply_address_exists(sessions, address)

        async def thread_of(message_ids: list[str]) -> str:
            return await reply_address_for(sessions, message_ids, email.reply_domain)

        mailbox = ImapMailbox(email, known_address=known, thread_of=thread_of)
        pulled.clients.append(mailbox)
        imap = {"email:imap": mailbox.poll}
        pulled.pollers.append(
            Poller(sessions, imap, email.imap_poll_seconds, on_stored, longest, _lock(settings, imap))
        )
    if telegram_polling and settings.channels.telegram.live:
        updates = TelegramUpdates(settings.channels.telegram)
        pulled.clients.append(updates)
        # One getUpdates call holds up to polling_timeout_seconds; the 1 s interval only paces errors.
        long_poll = {"telegram:updates": updates.poll}
        pulled.long_polls.append(
            Poller(sessions, long_poll, 1.0, on_stored, longest, _lock(settings, long_poll))
        )
    return pulled


def _lock(settings: Settings, polls: Mapping[str, object]) -> DeploymentLock:
    """The lock of the poller of `polls` (named as `Poller.name` names it)."""
    name = "+".join(polls)
    return DeploymentLock(settings.database.url, poller_lock_key(name), poller_lock_name(name))
