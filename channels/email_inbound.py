"""Inbound e-mail: an SMTP listener that only accepts replies to our broadcasts.

    async with InboundSmtpServer("127.0.0.1", 2525, "reply.shop.example", inbox.ingest) as server:
        ...  # MX of reply.shop.example points here; server.port is the bound port

aiosmtpd's `Controller` serves in its own thread and loop (parsing a 1 MiB message never
stalls the web loop); `on_message` runs on the loop that called `start()`. Only
`reply+<update_id>.<token>@<reply_domain>` is accepted at RCPT (never an open relay).
Automatic mail (out-of-office, bounces, lists) is accepted so the remote stops retrying,
then dropped. When `on_message` fails the sender is told `451` and retries: nothing is lost.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import AnyStr, cast

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from channels.base import InboundMessage
from channels.email_automated import is_automatic
from channels.email_parse import (
    ReplyAddress,
    html_to_text,
    parse_message,
    parse_reply,
    parse_reply_address,
    replies_from,
    strip_quotes,
)

__all__ = [
    "DEFAULT_MAX_BYTES",
    "InboundSmtpServer",
    "OnMessage",
    "ReplyAddress",
    "html_to_text",
    "is_automatic",
    "parse_reply",
    "parse_reply_address",
    "strip_quotes",
]

log = logging.getLogger(__name__)

OnMessage = Callable[[InboundMessage], Awaitable[object]]  # e.g. lambda m: store_inbound(sessions, [m])
KnownToken = Callable[[str], Awaitable[bool]]  # is this reply token one of ours?

DEFAULT_MAX_BYTES = 1024 * 1024
MAX_RECIPIENTS = 10  # a reply goes to one reply address; more looks like abuse (RFC 5321 allows 100)

UNKNOWN_RECIPIENT = "550 5.1.1 unknown recipient"
TOO_MANY_RECIPIENTS = "452 4.5.3 too many recipients"
TOO_BIG = "552 5.3.4 message too big"
TRY_LATER = "451 4.3.0 try again later"
UNPARSABLE = "554 5.6.0 message could not be parsed"

_START_ATTEMPTS = 5  # with port 0: another process may grab the probed port before the bind


class _SMTP(SMTP):
    """aiosmtpd's SMTP with our wording for its own size refusals (at MAIL SIZE= and during DATA)."""

    async def push(self, status: AnyStr) -> None:
        if isinstance(status, str) and status.startswith("552 Error"):
            status = cast(AnyStr, TOO_BIG)
        await super().push(status)


class _Controller(Controller):
    def factory(self) -> SMTP:
        return _SMTP(self.handler, **self.SMTP_kwargs)


class _Handler:
    """aiosmtpd hooks: RCPT filtering, then parse, classify and hand over at DATA."""

    def __init__(self, owner: InboundSmtpServer) -> None:
        self._owner = owner

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        parsed = parse_reply_address(address, self._owner.reply_domain)
        if parsed is None:
            return UNKNOWN_RECIPIENT
        try:
            known = await self._owner._is_known(parsed.token)
        except Exception:  # the database is unreachable: make the sender retry
            log.warning("inbound e-mail: token lookup failed, answered 451", exc_info=True)
            return TRY_LATER
        if not known:
            return UNKNOWN_RECIPIENT
        if len(envelope.rcpt_tos) >= MAX_RECIPIENTS:
            return TOO_MANY_RECIPIENTS
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        if len(raw) > self._owner.max_bytes:  # aiosmtpd counts dot-stuffed bytes; check the real size
            return TOO_BIG
        mail_from = envelope.mail_from or ""
        try:
            message = parse_message(raw)
            reason = is_automatic(message, mail_from)
            domain = self._owner.reply_domain
            replies = (
                [] if reason else replies_from(message, raw, envelope.rcpt_tos, domain, mail_from=mail_from)
            )
        except Exception:  # a message we cannot read will never become readable: bounce it
            log.exception("inbound e-mail refused: it could not be parsed")
            return UNPARSABLE
        if reason:
            # No addresses or tokens in the log: the reason is what an operator needs.
            log.info("inbound e-mail is automatic (%s): accepted and ignored", reason)
            return "250 2.0.0 OK: automatic message ignored"
        try:
            for reply in replies:
                await self._owner._deliver(reply)
        except Exception as exc:  # the inbox failed: make the sender retry rather than lose the reply
            log.warning("inbound e-mail handler failed (%s): answered 451", type(exc).__name__, exc_info=True)
            return TRY_LATER
        return "250 2.0.0 OK"


class InboundSmtpServer:
    """An SMTP listener for `reply+<update_id>.<token>@<reply_domain>` that calls `on_message`.

    `port=0` picks a free port (read `.port` after `start()`). `tls_context` offers STARTTLS.
    `max_bytes` is advertised as SIZE (RFC 1870) and enforced with `552 5.3.4`.
    """

    def __init__(
        self,
        host: str,
        port: int,
        reply_domain: str,
        on_message: OnMessage,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        tls_context: ssl.SSLContext | None = None,
        handler_timeout: float = 60.0,
        known_token: KnownToken | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.reply_domain = reply_domain
        self.max_bytes = max_bytes
        self.handler_timeout = handler_timeout
        self._requested_port = port
        self._on_message = on_message
        self._known_token = known_token
        self._tls_context = tls_context
        self._controller: _Controller | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def __repr__(self) -> str:
        return f"InboundSmtpServer(host={self.host!r}, port={self.port}, reply_domain={self.reply_domain!r})"

    async def __aenter__(self) -> InboundSmtpServer:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        """Bind and serve; returns once the listener accepts connections."""
        if self._controller is not None:
            raise RuntimeError("InboundSmtpServer is already started")
        self._loop = asyncio.get_running_loop()
        # Controller.start() blocks (thread start + a probe connection): keep it off our loop.
        self._controller = await asyncio.to_thread(self._start_controller)

    async def stop(self) -> None:
        """Stop accepting, cancel sessions in progress (their senders retry) and join the thread."""
        controller, self._controller = self._controller, None
        if controller is not None:
            await asyncio.to_thread(controller.stop)

    def _start_controller(self) -> _Controller:
        attempts = _START_ATTEMPTS if self._requested_port == 0 else 1
        for attempt in range(attempts):
            port = self._requested_port or _free_port(self.host)
            controller = _Controller(
                _Handler(self),
                hostname=self.host,
                port=port,
                # Our name in the greeting; the default, socket.getfqdn(), is a slow DNS lookup.
                server_hostname=self.reply_domain,
                ident="ESMTP",  # the default announces the aiosmtpd version
                data_size_limit=self.max_bytes,
                enable_SMTPUTF8=True,
                tls_context=self._tls_context,
                require_starttls=False,  # an MX must accept senders that cannot do TLS
            )
            try:
                controller.start()
            except OSError:
                controller.loop.close()
                if attempt == attempts - 1:
                    raise
                continue
            self.port = port
            return controller
        raise RuntimeError("unreachable: the loop returns or raises")  # pragma: no cover

    async def _is_known(self, token: str) -> bool:
        """Whether `token` belongs to a subscription (always, when no `known_token` was given)."""
        if self._known_token is None:
            return True
        if self._loop is None:
            raise RuntimeError("InboundSmtpServer is not started")
        check = self._known_token

        async def call() -> bool:
            return await check(token)

        future = asyncio.run_coroutine_threadsafe(call(), self._loop)
        return await asyncio.wait_for(asyncio.wrap_future(future), self.handler_timeout)

    async def _deliver(self, reply: InboundMessage) -> None:
        """Run `on_message` on the owner's loop and wait for it from the SMTP thread."""
        if self._loop is None:
            raise RuntimeError("InboundSmtpServer is not started")

        async def call() -> None:
            await self._on_message(reply)

        future = asyncio.run_coroutine_threadsafe(call(), self._loop)
        await asyncio.wait_for(asyncio.wrap_future(future), self.handler_timeout)


def _free_port(host: str) -> int:
    """A port that was free a moment ago (aiosmtpd's Controller cannot bind port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])
