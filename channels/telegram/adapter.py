"""Telegram: send through python-telegram-bot's `Bot`, parse webhook `Update`s into the inbox.

Broadcasts go out in HTML parse mode (compose already escaped the CM's text); answers to a
customer go out as plain text, quoting the customer's message. Both without link previews, one
`sendMessage` per part, at most one message per `per_chat_interval_seconds` to a chat and
`per_group_per_minute` to a group in any sliding window (Telegram allows about 1 message/s per
chat, 20 a minute per group; the overall 30/s is the dispatcher's pacer).
https://core.telegram.org/bots/faq#my-bot-is-hitting-limits-how-do-i-avoid-this
"""

from __future__ import annotations

import asyncio
import re
from collections import OrderedDict
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager

from telegram import Bot, LinkPreviewOptions, Message, ReplyParameters
from telegram.constants import ParseMode
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)

from broadcaster.message import RenderedMessage
from channels.base import (
    CheckResult,
    DeliveryError,
    DeploymentBudget,
    InboundMessage,
    RateLimited,
    Rejected,
    Reply,
    SendResult,
    Target,
    TargetBusy,
    Unauthorized,
    Unavailable,
)
from channels.limits import split_plain_text
from channels.pacing import Pacer, SlidingWindow, Unlimited
from channels.registry import CAPABILITIES
from channels.retry_hint import retry_after_seconds
from channels.telegram.inbound import parse_updates
from channels.telegram.redaction import hide_bot_token
from channels.telegram.request import AiohttpRequest, aiohttp_bot
from channels.telegram.settings import TelegramSettings

__all__ = ["TelegramChannel"]


_NO_PREVIEW = LinkPreviewOptions(is_disabled=True)
_MAX_REASON = 300
_MESSAGE_REF = re.compile(r"(-?[0-9]+):([0-9]+)")  # InboundMessage.external_id: "<chat_id>:<message_id>"


class _ChatSlot:
    """One chat's turn: a lock keeps parts of two messages from interleaving."""

    __slots__ = ("lock", "chat", "group")

    def __init__(self, chat: SlidingWindow | None, group: SlidingWindow | None) -> None:
        self.lock = asyncio.Lock()
        self.chat = chat  # Telegram's ~1 message/s per chat
        self.group = group  # 20 messages a minute to a group

    def idle(self) -> bool:
        return not self.lock.locked() and all(w.idle() for w in (self.chat, self.group) if w is not None)


class _ChatPacer:
    """At most one message per `interval` to a chat, `per_group_per_minute` to a group, in any
    sliding window, across concurrent sends.

    Remembers about `max_chats` chats, least recently used forgotten first, in O(1) per send; a
    chat still inside its window is kept (there are at most rate x 60 s of those).
    """

    _FORGET_TRIES = 8

    def __init__(self, interval: float, per_group_per_minute: int = 0, max_chats: int = 10_000) -> None:
        self.interval = interval
        self.per_group_per_minute = per_group_per_minute
        self.max_chats = max_chats
        self._slots: OrderedDict[str, _ChatSlot] = OrderedDict()

    @asynccontextmanager
    async def hold(self, chat: str) -> AsyncIterator[_ChatSlot]:
        slot = self._slots.get(chat)
        if slot is None:
            if len(self._slots) >= self.max_chats:
                self._forget_one()
            slot = self._slots[chat] = self._new_slot(chat)
        self._slots.move_to_end(chat)
        async with slot.lock:
            yield slot

    def _new_slot(self, chat: str) -> _ChatSlot:
        # Groups and supergroups have negative ids (channels are "@name" or -100…).
        per_chat = SlidingWindow(1, self.interval) if self.interval > 0 else None
        is_group = chat.startswith("-") and self.per_group_per_minute > 0
        per_group = SlidingWindow(self.per_group_per_minute, 60.0, spaced=False) if is_group else None
        return _ChatSlot(per_chat, per_group)

    def check_group_room(self, chat: str, slot: _ChatSlot, parts: int) -> None:
        """Raise `TargetBusy` when a group has no room for `parts` more messages this minute.

        Waiting a minute inside a send would outlast the delivery's lease. A message longer than
        the limit goes out in a quiet minute.
        """
        if slot.group is None:
            return
        wait = slot.group.delay_needed(extra=min(parts, slot.group.limit) - 1)
        if wait:
            limit = slot.group.limit
            raise TargetBusy(f"Telegram group {chat}: {limit} messages a minute reached", max(wait, 1.0))

    @asynccontextmanager
    async def turn(self, slot: _ChatSlot) -> AsyncIterator[None]:
        """One part's send: paced for the chat, counted for the group until it ends."""
        if slot.chat is not None:
            while wait := slot.chat.delay_needed():  # the slot's lock: nothing else in flight
                await asyncio.sleep(wait)  # Telegram's per-chat rate, not synchronisation
        windows = [w for w in (slot.chat, slot.group) if w is not None]
        for window in windows:
            window.start()
        try:
            yield
        finally:
            for window in windows:
                window.end()

    def _forget_one(self) -> None:
        for _ in range(min(len(self._slots), self._FORGET_TRIES)):
            chat, slot = self._slots.popitem(last=False)
            if slot.idle():
                return
            self._slots[chat] = slot  # in use or in its window: keep it, try the next oldest


class TelegramChannel:
    """Telegram Bot API channel (python-telegram-bot 22).

    >>> channel = TelegramChannel(settings.channels.telegram)
    >>> await channel.send(rendered, Target("@shop_status"), idempotency_key="42:telegram:@shop_status")
    """

    name = "telegram"
    capabilities = CAPABILITIES["telegram"]

    def __init__(self, settings: TelegramSettings) -> None:
        self._settings = settings
        token = settings.token.get_secret_value() if settings.token is not None else ""
        self._token = token.strip()
        self._bot: Bot | None = None
        self._transports: list[AiohttpRequest] = []
        self._pacer = _ChatPacer(settings.per_chat_interval_seconds, settings.per_group_per_minute)
        self._shared: DeploymentBudget | None = None
        self._bot_rate: Pacer = Unlimited()  # the dispatcher's pacer for the bot, once it hands it over

    def pace_messages_with(self, pacer: Pacer) -> None:
        """Take the bot's overall turn for each message, after the chat's own wait."""
        self._bot_rate = pacer

    @property
    def pacing_scope(self) -> str:
        """The bot's budget: "telegram:<bot id>" (the token's public part before the colon)."""
        return f"telegram:{self._token.partition(':')[0] or 'unset'}"

    def share_pacing(self, pacing: DeploymentBudget) -> None:
        """Draw the per-chat and per-group limits from the deployment's budget as well."""
        self._shared = pacing

    def __repr__(self) -> str:
        state = "set" if self._token else "unset"
        return f"TelegramChannel(base_url={self._settings.base_url!r}, token=<{state}>)"

    def _get_bot(self) -> Bot:
        """The Bot, built on first use (no I/O)."""
        if self._bot is None:
            if not self._token:
                raise Unauthorized("no Telegram token configured: set channels.telegram.token")
            s = self._settings
            self._bot, self._transports = aiohttp_bot(
                self._token, s.base_url, s.timeout_seconds, s.concurrency
            )
        return self._bot

    async def send(self, message: RenderedMessage, target: Target, *, idempotency_key: str) -> SendResult:
        """Send every part in order to `target.address` (a chat id or "@channel"), as HTML."""
        chat = target.address.strip()
        if not chat:
            raise Rejected("Telegram target has no chat id")
        if not message.parts:
            raise Rejected("nothing to send: the rendered Telegram message has no parts")
        sent = await self._send_parts(chat, message.parts, parse_mode=ParseMode.HTML)
        ids = [str(m.message_id) for m in sent]
        return SendResult(provider_message_id=ids[0], extra_ids=tuple(ids[1:]))

    async def reply(self, message: RenderedMessage, to: Reply, *, idempotency_key: str) -> SendResult:
        """Answer in chat `to.conversation_key`, quoting the customer's message `to.in_reply_to`.

        The text is plain (what the agent typed is shown as typed, `<` included), split at 4096
        characters; only the first part quotes. Ids are "<chat_id>:<message_id>", the inbound form.
        If the customer deleted their message the answer is still sent, without the quote.
        """
        chat = to.conversation_key.strip()
        if not chat:
            raise Rejected("Telegram answer has no chat id (conversation_key)")
        quoted = _message_id_in(chat, to.in_reply_to)
        text = message.text.strip()
        if not text:
            raise Rejected("nothing to send: the Telegram answer is empty")
        parts = split_plain_text(text, self.capabilities.max_body)
        sent = await self._send_parts(chat, parts, parse_mode=None, quoting=quoted)
        ids = [f"{m.chat_id}:{m.message_id}" for m in sent]
        return SendResult(provider_message_id=ids[0], extra_ids=tuple(ids[1:]))

    async def _send_parts(
        self, chat: str, parts: Sequence[str], *, parse_mode: str | None, quoting: int | None = None
    ) -> list[Message]:
        """Send `parts` in order, paced and never interleaved with another send to `chat`.

        Telegram has no idempotency key: if a later part fails, the error is raised and the
        dispatcher's retry sends the earlier parts again. The first part quotes message `quoting`.
        """
        sent: list[Message] = []
        async with self._pacer.hold(chat) as slot:
            self._pacer.check_group_room(chat, slot, len(parts))
            await self._shared_group_room(chat, len(parts))
            for part in parts:
                quote = None
                if quoting is not None and not sent:
                    quote = ReplyParameters(message_id=quoting, allow_sending_without_reply=True)
                try:
                    async with self._pacer.turn(slot), self._shared_chat_turn(chat), self._bot_rate.turn():
                        message = await self._get_bot().send_message(
                            chat_id=chat,
                            text=part,
                            parse_mode=parse_mode,
                            link_preview_options=_NO_PREVIEW,
                            reply_parameters=quote,
                        )
                except TelegramError as exc:
                    # `from None`: a transport cause may carry the request URL, hence the token.
                    raise self._delivery_error(exc, chat) from None
                sent.append(message)
        return sent

    @asynccontextmanager
    async def _shared_chat_turn(self, chat: str) -> AsyncIterator[None]:
        """The chat's turn in the deployment (1 a second, whichever worker sends), counted until a
        second after Telegram answers, like the bot's overall rate."""
        interval = self._settings.per_chat_interval_seconds
        if self._shared is None or interval <= 0:
            yield
            return
        async with self._shared.window(f"{self.pacing_scope}:chat:{chat}", 1, interval).turn():
            yield

    async def _shared_group_room(self, chat: str, parts: int) -> None:
        """Count `parts` against the group's minute for the deployment, or raise `TargetBusy`."""
        limit = self._settings.per_group_per_minute
        if self._shared is None or limit <= 0 or not chat.startswith("-"):
            return
        scope = f"{self.pacing_scope}:group:{chat}"
        answer = await self._shared.take(scope, limit, 60.0, min(parts, limit))
        if answer is not None and answer[0] > 0:
            raise TargetBusy(f"Telegram group {chat}: {limit} messages a minute reached", max(answer[0], 1.0))

    def _scrub(self, text: str) -> str:
        if self._token:
            text = text.replace(self._token, "***")
        text = hide_bot_token(text)
        return text if len(text) <= _MAX_REASON else text[: _MAX_REASON - 1] + "…"

    def _delivery_error(self, exc: TelegramError, chat: str) -> DeliveryError:
        detail = self._scrub(exc.message)
        if isinstance(exc, RetryAfter):
            seconds = retry_after_seconds(exc.retry_after)
            return RateLimited(f"Telegram flood control: retry after {seconds:g} s", retry_after=seconds)
        if isinstance(exc, InvalidToken):
            return Unauthorized("Telegram refused the bot token: set channels.telegram.token")
        if isinstance(exc, ChatMigrated):
            return Rejected(f"Telegram chat {chat} became supergroup {exc.new_chat_id}")
        if isinstance(exc, Forbidden | BadRequest):  # blocked, kicked, chat not found, bad HTML
            return Rejected(f"Telegram chat {chat}: {detail}")
        if isinstance(exc, TimedOut):
            return Unavailable(f"Telegram timed out: {detail}")
        if isinstance(exc, NetworkError):
            return Unavailable(f"Telegram unreachable: {detail}")
        return Unavailable(f"Telegram error: {detail}")

    def parse_inbound(self, body: bytes, headers: Mapping[str, str]) -> list[InboundMessage]:
        """Turn one webhook `Update` (or a list of them) into inbox messages (`parse_updates`).

        A body that is not JSON raises `ValueError`; one unreadable update is logged, never raised.
        """
        return parse_updates(body)

    async def check(self) -> CheckResult:
        """Call getMe: "ok: @botname", or what is wrong and how to fix it."""
        try:
            bot = self._get_bot()
        except Unauthorized as exc:
            return CheckResult(False, exc.reason, fix='set channels.telegram.token = "env:TELEGRAM_TOKEN"')
        try:
            me = await bot.get_me()
        except InvalidToken:
            return CheckResult(
                False,
                "Telegram refused the token: set channels.telegram.token",
                fix="copy the token @BotFather gave you into channels.telegram.token",
            )
        except TelegramError as exc:
            return CheckResult(
                False,
                f"Telegram unreachable at {self._settings.base_url}: {self._scrub(exc.message)}",
                fix="check channels.telegram.base_url and the network",
            )
        return CheckResult(True, f"ok: @{me.username}")

    async def webhook(self) -> CheckResult:
        """getWebhookInfo: where Telegram delivers messages to the bot — a webhook, or none (polling).

        A webhook whose last delivery failed is not ok: customers' messages wait at Telegram.
        """
        try:
            info = await self._get_bot().get_webhook_info()
        except Unauthorized as exc:
            return CheckResult(False, exc.reason, fix='set channels.telegram.token = "env:TELEGRAM_TOKEN"')
        except TelegramError as exc:
            return CheckResult(False, f"getWebhookInfo failed: {self._scrub(exc.message)}",
                               fix="check channels.telegram.token and base_url")  # fmt: skip
        pending = info.pending_update_count or 0
        if not info.url:
            return CheckResult(
                True, f"no webhook: polling mode (serve --telegram-polling), {pending} pending"
            )
        if info.last_error_message:
            return CheckResult(
                False,
                f"webhook {info.url}: Telegram's last try failed: {self._scrub(info.last_error_message)}",
                fix="make server.public_base_url reachable from the internet over https, then run serve",
            )
        return CheckResult(True, f"webhook set: {info.url}, {pending} pending")

    async def aclose(self) -> None:
        """Close the HTTP connection pools; the channel may be used again afterwards."""
        # Bot.shutdown() only acts after Bot.initialize(), which we never call: close our transports.
        transports, self._transports, self._bot = self._transports, [], None
        for transport in transports:
            await transport.shutdown()


def _message_id_in(chat: str, reference: str) -> int:
    """The message id of `reference` ("<chat_id>:<message_id>"), which must be in `chat`."""
    match = _MESSAGE_REF.fullmatch(reference.strip())
    if match is None:
        raise Rejected(f"Telegram cannot answer {reference!r}: expected '<chat_id>:<message_id>'")
    if match.group(1) != chat:
        raise Rejected(f"Telegram message {reference!r} is not in chat {chat}")
    return int(match.group(2))
