"""`[channels.telegram]`: a Telegram bot (python-telegram-bot): subscribers' chats, a public
channel, the status bot."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from channels.settings import ChannelSection, Secret

__all__ = ["TelegramSettings"]


class TelegramSettings(ChannelSection):
    token: Secret | None = None
    base_url: str = "https://api.telegram.org/bot"
    channel_id: str = ""
    rate_per_second: Annotated[float, Field(ge=0)] = 30.0
    per_chat_interval_seconds: Annotated[float, Field(ge=0)] = 1.0
    per_group_per_minute: Annotated[int, Field(ge=0)] = (
        20  # Bot API: 20 messages a minute in a group; 0 = off
    )
    concurrency: Annotated[int, Field(ge=1, le=1024)] = 64
    # Telegram sends it in X-Telegram-Bot-Api-Secret-Token on every webhook call (setWebhook's
    # secret_token); the webhook route refuses calls without it.
    webhook_secret: Secret | None = None
    timeout_seconds: Annotated[float, Field(gt=0)] = 20.0
    # `serve --telegram-polling` (no webhook): how long one getUpdates call waits for news.
    polling_timeout_seconds: Annotated[int, Field(ge=0, le=60)] = 25

    @property
    def live(self) -> bool:
        return self.enabled and not self.capture and self.token is not None
