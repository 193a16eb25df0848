"""Settings of each channel: a `[channels.<name>]` table of the config file.

A channel is live when its credentials are present, and in capture mode otherwise.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, IPvAnyNetwork, SecretStr, field_validator

__all__ = [
    "BlogSettings",
    "EmailSettings",
    "FacebookSettings",
    "PushSettings",
    "Secret",
    "Section",
    "TelegramSettings",
    "TwitterSettings",
    "WEBPUSH_HOSTS",
]

#: The push services browsers subscribe through: Chrome/Edge (FCM), Firefox, Safari, Windows (WNS).
WEBPUSH_HOSTS = (
    "fcm.googleapis.com",
    "updates.push.services.mozilla.com",
    "*.push.services.mozilla.com",
    "web.push.apple.com",
    "*.push.apple.com",
    "*.notify.windows.com",
)
_HOST_PATTERN = re.compile(r"(\*\.)?[a-z0-9]([a-z0-9.-]*[a-z0-9])?|\[?[0-9a-f:.]+\]?")


def _not_blank(value: SecretStr) -> SecretStr:
    if not value.get_secret_value().strip():
        raise ValueError("empty secret: set a real value or remove the key")
    return value


#: Every secret key: an empty or blank value would make a check that compares with it pass.
Secret = Annotated[SecretStr, AfterValidator(_not_blank)]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EmailSettings(Section):
    enabled: bool = True
    capture: bool = False
    host: str = ""
    port: Annotated[int, Field(ge=1, le=65535)] = 587
    security: Literal["starttls", "tls", "none"] = "starttls"
    username: str = ""
    password: Secret | None = None
    from_address: str = "status@shop.example"
    from_name: str = ""
    reply_domain: str = "reply.shop.example"
    pool_size: Annotated[int, Field(ge=1, le=256)] = 8
    rate_per_second: Annotated[float, Field(ge=0)] = 0.0
    timeout_seconds: Annotated[float, Field(gt=0)] = 30.0
    local_hostname: str = "broadcaster.localdomain"
    ca_file: str = ""  # extra CA bundle to trust (a private relay's certificate); empty = system CAs
    # Replies to broadcasts (reply+<update>.<token>@reply_domain) are received by `broadcaster serve`
    # on this SMTP listener; point the reply domain's MX (or a relay) at it.
    inbound_enabled: bool = False
    inbound_host: str = "127.0.0.1"
    inbound_port: Annotated[int, Field(ge=1, le=65535)] = 2525
    inbound_max_bytes: Annotated[int, Field(ge=1024)] = 1_048_576
    # Slow or greedy senders: disconnected after this long without a command (RFC 5321 §4.5.3.2.7:
    # at least 5 minutes), and at most this many sessions at once from one address (421 beyond).
    inbound_idle_timeout_seconds: Annotated[float, Field(gt=0)] = 300.0
    inbound_sessions_per_client: Annotated[int, Field(ge=1)] = 10
    # The authserv-id (RFC 8601) of the MTA in front of the listener or the mailbox, which checks
    # DMARC and removes Authentication-Results it did not write. Set: a reply is verified only when
    # that MTA found it DMARC- (or aligned DKIM-) authentic. Empty: a From equal to the
    # subscription's address is enough — and a From is easy to forge.
    inbound_authserv_id: str = ""
    # Or, without a public SMTP listener: `serve` reads the mailbox the reply domain delivers to,
    # over IMAP, every imap_poll_seconds (same rules as the listener; nothing is ever deleted).
    imap_host: str = ""  # empty = off
    imap_port: Annotated[int, Field(ge=1, le=65535)] = 993
    imap_security: Literal["tls", "starttls", "none"] = "tls"
    imap_username: str = ""
    imap_password: Secret | None = None
    imap_mailbox: Annotated[str, Field(min_length=1)] = "INBOX"
    imap_poll_seconds: Annotated[float, Field(gt=0)] = 30.0
    imap_ca_file: str = ""  # extra CA to trust (a private IMAP server); empty = system CAs

    @property
    def live(self) -> bool:
        return self.enabled and not self.capture and bool(self.host)

    @property
    def imap_enabled(self) -> bool:
        """Whether `serve` should poll a reply mailbox over IMAP."""
        return self.enabled and bool(self.imap_host)


class TelegramSettings(Section):
    enabled: bool = True
    capture: bool = False
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


class TwitterSettings(Section):
    """X (Twitter) API v2 through tweepy's AsyncClient, OAuth 1.0a user context."""

    enabled: bool = True
    capture: bool = False
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


class FacebookSettings(Section):
    """A Facebook page through facebook-sdk's GraphAPI (a current Graph version set after construction)."""

    enabled: bool = True
    capture: bool = False
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


class PushSettings(Section):
    """App push through FCM HTTP v1 (service account), and Web Push (VAPID) for browsers."""

    enabled: bool = True
    capture: bool = False
    service_account_file: str = ""  # FCM service-account JSON (its token_uri is honoured)
    fcm_base_url: str = "https://fcm.googleapis.com"
    topic: str = "all"  # "all app users"
    vapid_private_key_file: str = ""  # Web Push key (PEM); `broadcaster init` creates it if missing
    vapid_subject: str = "mailto:status@shop.example"
    ttl_seconds: Annotated[int, Field(ge=0)] = 3600
    rate_per_second: Annotated[float, Field(ge=0)] = 0.0
    timeout_seconds: Annotated[float, Field(gt=0)] = 20.0
    # A browser's endpoint is customer data: we POST only over https to these hosts ("*.x" = any
    # subdomain of x), never to a loopback, private, link-local or reserved address…
    webpush_hosts: tuple[str, ...] = WEBPUSH_HOSTS
    # …except in these networks, listed on purpose (a push service inside your network).
    webpush_private_networks: tuple[IPvAnyNetwork, ...] = ()
    webpush_ca_file: str = ""  # extra CA to trust for Web Push endpoints; empty = system CAs

    @field_validator("webpush_hosts")
    @classmethod
    def _host_patterns(cls, hosts: tuple[str, ...]) -> tuple[str, ...]:
        cleaned = tuple(h.strip().strip("[]").rstrip(".").lower() for h in hosts)
        for host in cleaned:
            if not _HOST_PATTERN.fullmatch(host):
                raise ValueError(f"{host!r} is not a host name, an IP address or *.domain")
        return cleaned

    @property
    def live(self) -> bool:
        return (
            self.enabled
            and not self.capture
            and bool(self.service_account_file or self.vapid_private_key_file)
        )


class BlogSettings(Section):
    """The incident page and Atom feed are built in; WordPress or a Markdown folder come on top."""

    enabled: bool = True
    capture: bool = False
    publisher: Literal["none", "wordpress", "markdown"] = "none"
    wordpress_url: str = ""  # e.g. https://blog.shop.example (the REST API is under /wp-json)
    wordpress_user: str = ""
    wordpress_app_password: Secret | None = None
    wordpress_status: Literal["publish", "draft"] = "publish"
    markdown_dir: str = ""  # Hugo/Jekyll content folder: one file per incident
    timeout_seconds: Annotated[float, Field(gt=0)] = 20.0

    @property
    def live(self) -> bool:
        if not self.enabled or self.capture:
            return False
        if self.publisher == "wordpress":
            return bool(self.wordpress_url) and self.wordpress_app_password is not None
        return self.publisher == "markdown" and bool(self.markdown_dir)
