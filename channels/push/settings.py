"""`[channels.push]`: app push (FCM HTTP v1) and browsers' Web Push (VAPID)."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import Field, IPvAnyNetwork, field_validator

from channels.settings import ChannelSection

__all__ = ["PushSettings", "WEBPUSH_HOSTS"]

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


class PushSettings(ChannelSection):
    """App push through FCM HTTP v1 (service account), and Web Push (VAPID) for browsers."""

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
