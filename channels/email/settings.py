"""`[channels.email]`: e-mail through an SMTP relay (aiosmtplib); replies come back on an SMTP
listener or over IMAP."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from channels.settings import ChannelSection, Secret

__all__ = ["EmailSettings"]


class EmailSettings(ChannelSection):
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
