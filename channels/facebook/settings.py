"""`[channels.facebook]`: a Facebook page through facebook-sdk."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from channels.settings import ChannelSection, Secret

__all__ = ["FacebookSettings"]


class FacebookSettings(ChannelSection):
    """A Facebook page through facebook-sdk's GraphAPI (a current Graph version set after construction)."""

    page_id: str = ""
    page_access_token: Secret | None = None
    app_secret: Secret | None = None  # checks X-Hub-Signature-256 on webhooks
    verify_token: Secret | None = None  # answers the webhook GET verification
    graph_base_url: str = "https://graph.facebook.com"
    api_version: str = "v21.0"
    follow_ups: Literal["comment", "post"] = (
        "comment"  # later updates: comments on the first post, or new posts
    )
    rate_per_second: Annotated[float, Field(ge=0)] = 1.0
    timeout_seconds: Annotated[float, Field(gt=0)] = 20.0

    @property
    def live(self) -> bool:
        return self.enabled and not self.capture and bool(self.page_id) and self.page_access_token is not None
