"""Telegram customer messages pulled with getUpdates, for a bot that has no public webhook URL.

    updates = TelegramUpdates(settings.channels.telegram)
    messages, cursor = await updates.poll(cursor)  # broadcaster.inbox.inbound.Poller calls this
    await updates.aclose()

A call waits up to `polling_timeout_seconds` for news (long polling), so it runs on a Bot and a
connection of its own, never the sender's pool. The cursor is the next `offset` (last
`update_id` + 1): asking with it confirms every earlier update to Telegram, which then forgets
them, so the poller stores messages before it saves the cursor. Updates become messages with the
webhook's parser (`channels.telegram.inbound`), one at a time: an unreadable one is still confirmed.
https://core.telegram.org/bots/api#getupdates
"""

from __future__ import annotations

import json
from urllib.parse import urlencode

from telegram import Bot
from telegram.error import Conflict, InvalidToken, NetworkError, RetryAfter, TelegramError, TimedOut

from channels.base import (
    CheckResult,
    DeliveryError,
    InboundMessage,
    RateLimited,
    Rejected,
    Unauthorized,
    Unavailable,
)
from channels.retry_hint import retry_after_seconds
from channels.telegram.inbound import INBOUND_KINDS, messages_of, update_id_of
from channels.telegram.redaction import hide_bot_token
from channels.telegram.request import AiohttpRequest, aiohttp_bot
from channels.telegram.settings import TelegramSettings

__all__ = ["TelegramUpdates"]

ALLOWED_UPDATES = list(INBOUND_KINDS)  # what the webhook's parser reads
_MAX_REASON = 300
_WEBHOOK_IS_SET = (
    "a webhook is set for this bot, and Telegram refuses getUpdates while it is: "
    "call deleteWebhook (https://core.telegram.org/bots/api#deletewebhook) to poll instead, "
    "or run `broadcaster serve` without --telegram-polling and keep the webhook"
)
_ANOTHER_POLLER = (
    "another process is calling getUpdates with this bot token: the nodes of one deployment take "
    "turns (one database), so another deployment or bot program uses this token; stop it"
)


class TelegramUpdates:
    """Long polling of the Bot API (`channels.telegram` settings); the webhook's alternative.

    The webhook is never deleted here: with a webhook set, `poll` raises `Unauthorized` saying
    so, and `check` reports it.
    """

    def __init__(self, settings: TelegramSettings) -> None:
        self._settings = settings
        token = settings.token.get_secret_value() if settings.token is not None else ""
        self._token = token.strip()
        self._bot: Bot | None = None
        self._transports: list[AiohttpRequest] = []

    def __repr__(self) -> str:
        state = "set" if self._token else "unset"
        return f"TelegramUpdates(base_url={self._settings.base_url!r}, token=<{state}>)"

    async def poll(self, cursor: str) -> tuple[list[InboundMessage], str]:
        """Messages sent to the bot after `cursor` (the next offset; "" = every pending update).

        Waits up to `polling_timeout_seconds` when there is nothing new; returns the cursor
        unchanged then. The cursor moves past every update received, readable or not.
        """
        updates = await self._get_updates(_offset(cursor))
        ids = [update_id for update in updates if (update_id := update_id_of(update)) is not None]
        return messages_of(updates), str(max(ids) + 1) if ids else cursor

    async def check(self) -> CheckResult:
        """getMe then getWebhookInfo: polling works only while no webhook is set."""
        try:
            bot = self._get_bot()
            me = await bot.get_me()
            webhook = await bot.get_webhook_info()
        except Unauthorized as exc:
            return CheckResult(False, exc.reason, fix='set channels.telegram.token = "env:TELEGRAM_TOKEN"')
        except TelegramError as exc:
            error = self._poll_error(exc)
            return CheckResult(False, error.reason, fix="check channels.telegram.token and base_url")
        if webhook.url:
            return CheckResult(False, f"@{me.username}: {_WEBHOOK_IS_SET}", fix="call deleteWebhook")
        return CheckResult(True, f"ok: @{me.username}, no webhook set: getUpdates can be used")

    async def aclose(self) -> None:
        """Close the connections; a later poll opens new ones."""
        transports, self._transports, self._bot = self._transports, [], None
        for transport in transports:
            await transport.shutdown()

    def _get_bot(self) -> Bot:
        """A Bot of our own, built on first use (no I/O); `Bot.initialize()` is never called."""
        if self._bot is None:
            if not self._token:
                raise Unauthorized("no Telegram token configured: set channels.telegram.token")
            # PTB reads getUpdates' read timeout as this transport's plus the long-poll timeout.
            s = self._settings
            self._bot, self._transports = aiohttp_bot(self._token, s.base_url, s.timeout_seconds, 1)
        return self._bot

    async def _get_updates(self, offset: int | None) -> list[object]:
        """getUpdates' raw result. `Bot.get_updates` decodes every update into PTB's models at
        once, so one shape PTB refuses would fail them all: the call goes through our transport,
        which still maps Telegram's errors to PTB's exceptions."""
        bot = self._get_bot()
        wait = self._settings.polling_timeout_seconds
        query = {"timeout": wait, "allowed_updates": json.dumps(ALLOWED_UPDATES)}
        if offset is not None:
            query["offset"] = offset
        try:
            result = await self._transports[1].post(
                f"{bot.base_url}/getUpdates?{urlencode(query)}",
                read_timeout=self._settings.timeout_seconds + wait,
            )
        except TelegramError as exc:
            # `from None`: a transport cause may carry the request URL, hence the token.
            raise self._poll_error(exc) from None
        if not isinstance(result, list):
            raise Unavailable("Telegram answered getUpdates without a list of updates")
        return list(result)

    def _poll_error(self, exc: TelegramError) -> DeliveryError:
        detail = self._scrub(exc.message)
        if isinstance(exc, Conflict):
            webhook = "webhook" in exc.message.lower()
            return Unauthorized(_WEBHOOK_IS_SET) if webhook else Unavailable(_ANOTHER_POLLER)
        if isinstance(exc, RetryAfter):
            wait = retry_after_seconds(exc.retry_after)
            return RateLimited(f"Telegram flood control: retry after {wait:g} s", retry_after=wait)
        if isinstance(exc, InvalidToken):
            return Unauthorized("Telegram refused the bot token: set channels.telegram.token")
        if isinstance(exc, TimedOut):
            return Unavailable(f"Telegram timed out: {detail}")
        if isinstance(exc, NetworkError):
            return Unavailable(f"Telegram unreachable: {detail}")
        return Unavailable(f"Telegram error: {detail}")

    def _scrub(self, text: str) -> str:
        if self._token:
            text = text.replace(self._token, "***")
        text = hide_bot_token(text)
        return text if len(text) <= _MAX_REASON else text[: _MAX_REASON - 1] + "…"


def _offset(cursor: str) -> int | None:
    """ "" → None (every pending update); a number → itself; else `Rejected` (the poller resets it)."""
    if not cursor:
        return None
    if not (cursor.isascii() and cursor.isdigit()) or len(cursor) > 19:
        raise Rejected(f"Telegram cursor {cursor[:40]!r} is not an update offset")
    return int(cursor)
