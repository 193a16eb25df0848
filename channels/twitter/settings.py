"""`[channels.twitter]`: X (Twitter) API v2 through tweepy."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from channels.settings import ChannelSection, Secret

__all__ = ["TwitterSettings"]


class TwitterSettings(ChannelSection):
    """X (Twitter) API v2 through tweepy's AsyncClient, OAuth 1.0a user context."""

    consumer_key: Secret | None = None
    consumer_secret: Secret | None = None
    access_token: Secret | None = None
    access_token_secret: Secret | None = None
    bearer_token: Secret | None = None
    # tweepy hard-codes https://api.twitter.com; another base URL (a local peer) is reached by
    # resolving api.twitter.com to its host and port.
    api_base_url: str = "https://api.twitter.com"
    ca_file: str = ""  # extra CA to trust (a local HTTPS peer); empty = system CAs
    posts_per_window: Annotated[int, Field(ge=1)] = 100  # X: 100 posts / 15 min per user
    window_seconds: Annotated[float, Field(gt=0)] = 900.0
    poll_interval_seconds: Annotated[float, Field(gt=0)] = 60.0
    timeout_seconds: Annotated[float, Field(gt=0)] = 20.0

    @property
    def live(self) -> bool:
        keys = (self.consumer_key, self.consumer_secret, self.access_token, self.access_token_secret)
        return self.enabled and not self.capture and all(k is not None for k in keys)
