"""A Telegram bot: every subscriber's chat (and a public channel), the status bot's answers;
messages come back by webhook or `getUpdates`."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

from channels.base import Capabilities, Inbound, Overflow
from channels.limits import split_text
from channels.spec import ChannelSpec, Fitted, LiveAdapter
from channels.telegram.redaction import LOG_RULES
from channels.telegram.settings import TelegramSettings

__all__ = ["SPEC"]


def _fit(texts: Mapping[str, str], caps: Capabilities, _md: Callable[[str], str]) -> Fitted:
    return Fitted(tuple(split_text(texts["body"], caps.max_body)))


_CHAT_ID = re.compile(r"-?[0-9]{1,20}")  # ASCII: int() would also read "١٢٣"


def _check_address(value: str, _section: TelegramSettings) -> tuple[str, str]:
    if _CHAT_ID.fullmatch(value):
        return value, ""
    return value, f"telegram_chat_id {value!r}: must be a number (the chat id the bot sees)"


def _build(section: TelegramSettings) -> LiveAdapter:
    from channels.telegram.adapter import TelegramChannel

    return LiveAdapter(TelegramChannel(section), section.concurrency, section.rate_per_second)


SPEC = ChannelSpec(
    name="telegram",
    settings=TelegramSettings,
    # sendMessage: 1-4096 characters after entities parsing (rates: [channels.telegram]).
    capabilities=Capabilities(max_body=4096, overflow=Overflow.SPLIT, inbound=Inbound.WEBHOOK),
    parts=("body",),
    fit=_fit,
    labels={"fr": "Telegram", "en": "Telegram"},
    build=_build,
    go_live="channels.telegram.token",
    subscribers=True,
    subscriber_column="telegram_chat_id",
    check_address=_check_address,
    answers_alerts=True,
    staff_alerts=True,
    drill_audience="drill.telegram_chat_id",
    notice_hours=1,
    log_rules=LOG_RULES,
)
