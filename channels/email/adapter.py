"""The e-mail channel: one MIME message per subscriber, sent over a pool of SMTP connections.

Answers to customers (`reply`) share the pool and the errors, and thread under their message.

Failures become the contract's typed errors: a refused mailbox is `Rejected` (stop sending to
it), a refused login `Unauthorized` (fix the config), anything transient `Unavailable` (retry).
Reasons are short and never contain the password.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Mapping

import aiosmtplib

from broadcaster.message import RenderedMessage
from channels.base import (
    Capabilities,
    CheckResult,
    DeliveryError,
    InboundMessage,
    RateLimited,
    Rejected,
    Reply,
    SendResult,
    Target,
    Unauthorized,
    Unavailable,
)
from channels.email.message import build_email_bytes, build_reply, is_plausible_address, message_id_for
from channels.email.pool import PoolClosed, SmtpConfigError, SmtpPool
from channels.email.settings import EmailSettings
from channels.registry import CAPABILITIES
from channels.retry_hint import DEFAULT_RETRY_AFTER

__all__ = ["EmailChannel", "delivery_error"]

#: 4xx replies that mean "slow down" rather than "try again" (Postfix, Exchange, Gmail wording).
_RATE_REPLY = re.compile(r"rate|throttl|too many (?:messages|mails|connections)|try again in", re.I)
#: When the server asks us to slow down without saying for how long.
_SENT_ERRORS = (aiosmtplib.SMTPException, OSError, ValueError, SmtpConfigError, PoolClosed)


class EmailChannel:
    """Sends broadcasts over SMTP with a pool of reused connections (`channels.email` settings).

    Usage: ``await EmailChannel(settings).send(message, Target("a@b.example"), idempotency_key=key)``;
    call `aclose()` at shutdown to QUIT the pooled connections.
    """

    name = "email"
    capabilities: Capabilities = CAPABILITIES["email"]

    def __init__(self, settings: EmailSettings) -> None:
        self._settings = settings
        self._pool = SmtpPool(settings)  # lazy: no connection until the first send

    def __repr__(self) -> str:
        s = self._settings
        return (
            f"EmailChannel(host={s.host!r}, port={s.port}, security={s.security!r}, "
            f"username={s.username!r}, pool_size={s.pool_size})"
        )

    @property
    def connections_opened(self) -> int:
        """SMTP connections opened so far (reuse keeps this near `pool_size`)."""
        return self._pool.opened

    async def send(self, message: RenderedMessage, target: Target, *, idempotency_key: str) -> SendResult:
        """Send one message to `target.address`; the result carries the deterministic Message-ID."""
        if not is_plausible_address(target.address):
            raise Rejected("invalid e-mail address")
        s = self._settings
        raw = build_email_bytes(
            message,
            target,
            idempotency_key=idempotency_key,
            from_address=s.from_address,
            from_name=s.from_name,
            reply_domain=s.reply_domain,
        )
        await self._deliver(target.address, raw)
        return SendResult(provider_message_id=message_id_for(idempotency_key, s.from_address))

    async def reply(self, message: RenderedMessage, to: Reply, *, idempotency_key: str) -> SendResult:
        """E-mail the answer to `to.customer_handle`, in the thread of their message `to.in_reply_to`.

        The result is the answer's Message-ID, as `channels.email.parse` files an inbound one ("<…@…>").
        """
        address = to.customer_handle.strip()
        if not is_plausible_address(address):
            raise Rejected("invalid e-mail address for the answer (customer_handle)")
        if not message.text.strip():
            raise Rejected("nothing to send: the e-mail answer is empty")
        s = self._settings
        email = build_reply(
            message,
            to,
            idempotency_key=idempotency_key,
            from_address=s.from_address,
            from_name=s.from_name,
            reply_domain=s.reply_domain,
        )
        await self._deliver(address, email.as_bytes())
        return SendResult(provider_message_id=message_id_for(idempotency_key, s.from_address))

    async def _deliver(self, address: str, raw: bytes) -> None:
        s = self._settings
        try:
            await self._pool.run(lambda smtp: smtp.sendmail(s.from_address, [address], raw))
        except _SENT_ERRORS as exc:
            raise delivery_error(exc, s) from None

    def parse_inbound(self, body: bytes, headers: Mapping[str, str]) -> list[InboundMessage]:
        """Always `[]` for now: replies to `reply+<token>@` arrive through a later SMTP listener."""
        return []

    async def check(self) -> CheckResult:
        """Connect, secure, log in, NOOP, QUIT; say what is wrong and which setting fixes it."""
        s = self._settings
        if not s.host:
            return CheckResult(False, "no SMTP server configured", "set channels.email.host")
        if s.username and s.password is None:
            return CheckResult(
                False, f"no password for SMTP user {s.username!r}", "set channels.email.password"
            )
        if s.password is not None and not s.username:
            return CheckResult(
                False, "an SMTP password is set but no username", "set channels.email.username"
            )
        try:
            client = await self._pool.open()
            try:
                await client.noop()
                await client.quit()
            finally:
                client.close()
        except _SENT_ERRORS as exc:
            return _diagnose(exc, s)
        login = f", logged in as {s.username!r}" if s.username else ""
        return CheckResult(True, f"SMTP server {s.host}:{s.port} reachable ({s.security}){login}")

    async def aclose(self) -> None:
        """QUIT every pooled connection; the channel sends nothing afterwards."""
        await self._pool.aclose()


def delivery_error(exc: BaseException, settings: EmailSettings) -> DeliveryError:
    """Translate an aiosmtplib / socket error into the channel contract's error tree."""
    where = f"{settings.host}:{settings.port}"
    if isinstance(exc, PoolClosed):
        return Unavailable(str(exc))
    if isinstance(exc, SmtpConfigError):
        return Unauthorized(str(exc))
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
        return Unauthorized(f"SMTP login refused for user {settings.username!r}")
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused) and exc.recipients:
        exc = exc.recipients[0]
    if isinstance(exc, aiosmtplib.SMTPRecipientRefused):
        return _by_code(exc.code, exc.message, permanent=Rejected)
    if isinstance(exc, aiosmtplib.SMTPSenderRefused) and exc.code != 421:
        # 5xx on MAIL FROM: the relay will not send for our from_address (or wants AUTH first).
        return _by_code(exc.code, f"sender {settings.from_address} refused: {exc.message}", Unauthorized)
    if isinstance(exc, aiosmtplib.SMTPDataError):
        return _by_code(exc.code, exc.message, permanent=Rejected)
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return _by_code(exc.code, exc.message, permanent=Unavailable)
    if isinstance(exc, aiosmtplib.SMTPTimeoutError):
        return Unavailable(f"SMTP server {where} did not answer in time")
    if _ssl_cause(exc) is not None:
        return Unavailable(f"TLS with SMTP server {where} failed")
    if isinstance(exc, aiosmtplib.SMTPServerDisconnected):
        return Unavailable(f"SMTP server {where} closed the connection")
    if isinstance(exc, aiosmtplib.SMTPNotSupported):
        return Unavailable(f"SMTP server {where}: {_short(exc.message)}")
    if isinstance(exc, aiosmtplib.SMTPConnectError | OSError):
        return Unavailable(f"cannot connect to SMTP server {where}")
    if isinstance(exc, ValueError):
        return Rejected("invalid e-mail address")
    if isinstance(exc, aiosmtplib.SMTPException) and "authentication method" in exc.message:
        return Unauthorized(f"SMTP server {where} offers no login method we support")
    return Unavailable(f"SMTP error with {where}: {_short(str(exc))}")


def _by_code(code: int, text: str, permanent: type[DeliveryError]) -> DeliveryError:
    reason = f"{code} {_short(text)}"
    if code >= 500:
        return permanent(reason)
    if code in (450, 451, 452) and _RATE_REPLY.search(text):
        return RateLimited(reason, retry_after=DEFAULT_RETRY_AFTER)
    return Unavailable(reason)  # every 4xx, including 421 "service not available"


def _short(text: str, limit: int = 160) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _ssl_cause(exc: BaseException) -> ssl.SSLError | None:
    seen = 0
    current: BaseException | None = exc
    while current is not None and seen < 8:  # bounded: cause chains are short, never cyclic in practice
        if isinstance(current, ssl.SSLError):
            return current
        current = current.__cause__ or current.__context__
        seen += 1
    return None


def _diagnose(exc: BaseException, s: EmailSettings) -> CheckResult:
    where = f"{s.host}:{s.port}"
    ssl_error = _ssl_cause(exc)
    if isinstance(exc, SmtpConfigError):
        return CheckResult(
            False, str(exc), "point channels.email.ca_file at a readable PEM file, or empty it"
        )
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
        return CheckResult(
            False,
            f"SMTP login refused for user {s.username!r} ({exc.code})",
            "check channels.email.username and channels.email.password",
        )
    if isinstance(ssl_error, ssl.SSLCertVerificationError):
        return CheckResult(
            False,
            f"the TLS certificate of {where} is not trusted: {_short(ssl_error.verify_message or '')}",
            "set channels.email.ca_file to the CA that signed it, or use the name on the certificate as host",
        )
    if ssl_error is not None:
        return CheckResult(
            False,
            f"TLS handshake with {where} failed",
            'check channels.email.security: "starttls" (port 587) or "tls" (port 465)',
        )
    if isinstance(exc, aiosmtplib.SMTPNotSupported):
        return CheckResult(
            False,
            f"{where}: {_short(exc.message)}",
            'set channels.email.security = "tls" (port 465), or "none" for a trusted local relay',
        )
    if isinstance(exc, aiosmtplib.SMTPTimeoutError):
        return CheckResult(
            False, f"{where} did not answer in time", "check channels.email.host, port, firewall"
        )
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return CheckResult(
            False, f"{where} answered {exc.code} {_short(exc.message)}", "see the SMTP server's log"
        )
    if isinstance(exc, aiosmtplib.SMTPConnectError | aiosmtplib.SMTPServerDisconnected | OSError):
        return CheckResult(
            False,
            f"cannot connect to SMTP server {where}",
            "check channels.email.host and channels.email.port, and that the server is running",
        )
    if isinstance(exc, aiosmtplib.SMTPException) and "authentication method" in exc.message:
        return CheckResult(
            False,
            f"{where} offers no login method we support",
            'set channels.email.security to "starttls" or "tls" (servers offer AUTH only over TLS)',
        )
    return CheckResult(False, f"SMTP error with {where}: {_short(str(exc))}", "see the SMTP server's log")
