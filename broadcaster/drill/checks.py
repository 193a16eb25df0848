"""The round trips of a drill: the ways back to us, checked after the TEST message went out.

- Telegram: getWebhookInfo (a webhook, or polling mode), then the status bot's answer to a
  `/status` someone sends in the test chat during the drill: read from the inbox tables, as
  `broadcaster serve` filed it and the outbox sent the answer.
- E-mail (when the SMTP listener or IMAP is configured): a reply to the drill e-mail, which the
  inbound path of `serve` records on the drill's row (`broadcaster.drill.reply`).

Both need a person and a running `serve`, so they wait (at most `drill.wait_seconds`), reading
the database every half second; `wait=False` (`--no-wait`) skips them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime

from sqlmodel import col, select

from broadcaster.config import Settings
from broadcaster.db import SessionFactory
from broadcaster.delivery.runtimes import ChannelRuntime
from broadcaster.inbox.answers import BOT
from broadcaster.models import Conversation, DrillRun, Message

__all__ = ["FAILED", "OK", "SKIPPED", "ChannelResult", "round_trips"]

OK, FAILED, SKIPPED = "ok", "failed", "skipped"
POLL_SECONDS = 0.5
CHECK_TIMEOUT = 30.0
_SERVE = "`broadcaster serve` must be running while the drill waits"


@dataclass(frozen=True, slots=True)
class ChannelResult:
    """One row of the readiness table: a channel's send, or one of its round trips."""

    channel: str  # "email", or "email (reply)" for a round trip
    status: str  # OK, FAILED or SKIPPED
    detail: str
    fix: str = ""
    provider_ids: tuple[str, ...] = ()
    first_accepted_seconds: float | None = None  # from the drill's start to the provider's first "accepted"

    def as_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["provider_ids"] = list(self.provider_ids)
        return data


async def _webhook(runtime: ChannelRuntime) -> ChannelResult:
    from channels.telegram.adapter import TelegramChannel

    name = "telegram (webhook)"
    channel = runtime.channel
    if not isinstance(channel, TelegramChannel):
        return ChannelResult(name, SKIPPED, "not the Telegram Bot API adapter")
    try:
        check = await asyncio.wait_for(channel.webhook(), CHECK_TIMEOUT)
    except TimeoutError:
        return ChannelResult(
            name, FAILED, f"no answer within {CHECK_TIMEOUT:g} s", "check channels.telegram.base_url"
        )
    return ChannelResult(name, OK if check.ok else FAILED, check.detail, check.fix)


async def _until(
    deadline: float, probe: Callable[[], Awaitable[ChannelResult | None]]
) -> ChannelResult | None:
    """`probe()` every half second until it has a result or `deadline` (monotonic) passes."""
    for _ in range(int((deadline - time.monotonic()) / POLL_SECONDS) + 2):  # bounded in count and time
        found = await probe()
        if found is not None or time.monotonic() >= deadline:
            return found
        await asyncio.sleep(POLL_SECONDS)  # the other process's commit is only seen by reading again
    return await probe()


async def _reply(
    sessions: SessionFactory, run: DrillRun, settings: Settings, deadline: float
) -> ChannelResult:
    name = "email (reply)"

    async def probe() -> ChannelResult | None:
        async with sessions() as session:
            row = await session.get(DrillRun, run.id, populate_existing=True)
        if row is None or row.replied_at is None:
            return None
        after = (row.replied_at - run.started_at).total_seconds()
        return ChannelResult(name, OK, f"a reply from {row.reply_from or '?'} came back after {after:.0f} s")

    found = await _until(deadline, probe)
    if found is not None:
        return found
    email = settings.channels.email
    where = (f"the SMTP listener on {email.inbound_host}:{email.inbound_port}" if email.inbound_enabled
             else f"the IMAP mailbox {email.imap_username}@{email.imap_host}")  # fmt: skip
    return ChannelResult(
        name, FAILED, f"no reply to the drill e-mail within {settings.drill.wait_seconds:g} s",
        f"reply to the drill e-mail from a test mailbox while the drill waits; {_SERVE} ({where} records "
        f"the reply; mail for {email.reply_domain} must reach it)",
    )  # fmt: skip


async def _status_answer(
    sessions: SessionFactory, chat: str, since: datetime, settings: Settings, deadline: float
) -> ChannelResult:
    """The bot's answer to a `/status` received from `chat` after `since`."""
    name = "telegram (/status)"
    asked_at: list[datetime] = []

    async def probe() -> ChannelResult | None:
        async with sessions() as session:
            conversation = select(col(Conversation.id)).where(
                Conversation.channel == "telegram", Conversation.conversation_key == chat
            )
            asked = await session.exec(
                select(Message.created_at)
                .where(col(Message.conversation_id).in_(conversation.scalar_subquery()))
                .where(Message.direction == "in", col(Message.text).startswith("/status"))
                .where(col(Message.created_at) >= since)
                .order_by(col(Message.created_at))
                .limit(1)
            )
            first = asked.first()
            if first is None:
                return None
            asked_at[:] = [first]
            answers = await session.exec(
                select(Message.delivery_status, Message.delivery_error)
                .where(col(Message.conversation_id).in_(conversation.scalar_subquery()))
                .where(Message.direction == "out", Message.author == BOT, col(Message.created_at) >= first)
            )
            statuses = list(answers)
        if any(status == "sent" for status, _ in statuses):
            return ChannelResult(name, OK, f"the bot answered /status in chat {chat}")
        failed = [error for status, error in statuses if status == "failed"]
        if failed:
            return ChannelResult(name, FAILED, f"the bot's answer failed: {failed[0][:200]}",
                                 "see `broadcaster doctor` for channels.telegram")  # fmt: skip
        return None

    found = await _until(deadline, probe)
    if found is not None:
        return found
    if asked_at:
        late = "/status was received but the bot's answer was not sent in time"
        return ChannelResult(name, FAILED, late, f"{_SERVE}; see `broadcaster doctor` for its loops")
    return ChannelResult(
        name, FAILED, f"no /status from chat {chat} within {settings.drill.wait_seconds:g} s",
        f"send /status in the test chat while the drill waits; {_SERVE} (Telegram's webhook points at it, "
        "or it runs with --telegram-polling)",
    )  # fmt: skip


async def round_trips(
    settings: Settings,
    sessions: SessionFactory,
    runtimes: Mapping[str, ChannelRuntime],
    run: DrillRun,
    accepted: set[str],
    *,
    wait: bool,
    progress: Callable[[str], None],
) -> list[ChannelResult]:
    """The round-trip rows of the channels whose TEST message was `accepted`."""
    results: list[ChannelResult] = []
    deadline = time.monotonic() + settings.drill.wait_seconds
    waits: dict[str, Awaitable[ChannelResult]] = {}
    if "telegram" in accepted:
        results.append(await _webhook(runtimes["telegram"]))
        name = "telegram (/status)"
        if not settings.inbox.bot_enabled:
            results.append(
                ChannelResult(name, FAILED, "the status bot is off", "set inbox.bot_enabled = true")
            )
        elif wait:
            waits[name] = _status_answer(
                sessions, settings.drill.telegram_chat_id, run.started_at, settings, deadline
            )
        else:
            results.append(ChannelResult(name, SKIPPED, "not checked (--no-wait)"))
    if "email" in accepted:
        email = settings.channels.email
        name = "email (reply)"
        if not (email.inbound_enabled or email.imap_enabled):
            how = "set channels.email.inbound_enabled (SMTP listener) or imap_host"
            results.append(ChannelResult(name, SKIPPED, "no inbound path to check", how))
        elif wait:
            waits[name] = _reply(sessions, run, settings, deadline)
        else:
            results.append(ChannelResult(name, SKIPPED, "not checked (--no-wait)"))
    return results + await _waiting(waits, settings.drill.wait_seconds, progress)


async def _waiting(
    waits: dict[str, Awaitable[ChannelResult]], seconds: float, progress: Callable[[str], None]
) -> list[ChannelResult]:
    """Run the waits together, telling `progress` every second which are still waiting."""
    tasks = {name: asyncio.ensure_future(w) for name, w in waits.items()}
    started = time.monotonic()
    asks = {
        "email (reply)": "reply to the drill e-mail",
        "telegram (/status)": "send /status in the test chat",
    }
    try:
        for _ in range(int(seconds) + 10):  # bounded: each task ends by its deadline
            pending = [name for name, task in tasks.items() if not task.done()]
            if not pending:
                break
            todo = "; ".join(asks.get(name, name) for name in pending)
            progress(f"waiting {time.monotonic() - started:.0f}/{seconds:g} s: {todo}")
            await asyncio.wait([tasks[name] for name in pending], timeout=1.0)
        return [await task for task in tasks.values()]
    finally:
        for task in tasks.values():
            task.cancel()
