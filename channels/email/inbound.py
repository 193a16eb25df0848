"""Inbound e-mail: an SMTP listener that only accepts replies to our broadcasts.

    async with InboundSmtpServer("127.0.0.1", 2525, "reply.shop.example", inbox.ingest) as server:
        ...  # MX of reply.shop.example points here; server.port is the bound port

aiosmtpd's `Controller` serves in its own thread and loop; each message is parsed in a worker
thread within `parse_seconds`, so a hostile one stalls neither the web loop nor other SMTP
sessions; `on_message` runs on the loop that called `start()`. Lines of any length are accepted
(only the message size is limited). Only `reply+<update_id>.<token>@<reply_domain>` is accepted at
RCPT (never an open relay), and only when we sent that update to that token's subscriber
(`known_address`): a leaked token with another update id is refused like an unknown one.
`postmaster@<reply_domain>` (and a bare `<postmaster>`, RFC 5321 §4.5.1) is accepted when
`on_postmaster` is given, which gets every such message whole.
Automatic mail (out-of-office, bounces, lists) is accepted so the remote stops retrying,
then dropped. When `on_message` fails the sender is told `451` and retries: nothing is lost.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections import Counter
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any, AnyStr, cast

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from channels.base import InboundMessage
from channels.email.auth import with_sender_check
from channels.email.automated import is_automatic
from channels.email.parse import (
    PARSE_SECONDS,
    ReplyAddress,
    html_to_text,
    parse_message,
    parse_reply,
    parse_reply_address,
    replies_from,
)
from channels.email.quotes import strip_quotes

__all__ = [
    "DEFAULT_MAX_BYTES",
    "InboundSmtpServer",
    "OnMessage",
    "OnPostmaster",
    "ReplyAddress",
    "html_to_text",
    "is_automatic",
    "parse_reply",
    "parse_reply_address",
    "strip_quotes",
]

log = logging.getLogger(__name__)

OnMessage = Callable[[InboundMessage], Awaitable[object]]  # e.g. lambda m: store_inbound(sessions, [m])
OnPostmaster = Callable[[bytes, str], Awaitable[object]]  # (the message's bytes, the envelope sender)
KnownAddress = Callable[[ReplyAddress], Awaitable[bool]]  # did we send this reply address?

DEFAULT_MAX_BYTES = 1024 * 1024
MAX_RECIPIENTS = 10  # a reply goes to one reply address; more looks like abuse (RFC 5321 allows 100)

UNKNOWN_RECIPIENT = "550 5.1.1 unknown recipient"
TOO_MANY_RECIPIENTS = "452 4.5.3 too many recipients"
TOO_BIG = "552 5.3.4 message too big"
TRY_LATER = "451 4.3.0 try again later"
UNPARSABLE = "554 5.6.0 message could not be parsed"
TOO_MANY_SESSIONS = "421 4.7.0 too many connections from your address, try again later"
DEFAULT_IDLE_TIMEOUT = 300.0  # RFC 5321 §4.5.3.2.7: a server waits at least 5 minutes for a command
DEFAULT_SESSIONS_PER_CLIENT = 10

_START_ATTEMPTS = 5  # with port 0: another process may grab the probed port before the bind


class _ClientSessions:
    """The sessions each client address has open; used on the listener's own loop only (no lock)."""

    def __init__(self, per_client: int) -> None:
        self.per_client = per_client
        self._open: Counter[str] = Counter()

    def enter(self, host: str) -> bool:
        if self._open[host] >= self.per_client:
            return False
        self._open[host] += 1
        return True

    def leave(self, host: str) -> None:
        self._open[host] -= 1
        if self._open[host] <= 0:
            del self._open[host]


class _SMTP(SMTP):
    """aiosmtpd's SMTP with our wording for its size refusals, lines as long as the message, and at
    most `sessions.per_client` sessions at once per client address (`421` beyond).

    RFC 5321 §4.5.3.1.6's 1,000 octets bind senders; real mail has longer lines (HTML on one
    line), which aiosmtpd would refuse with `500`. Only the message size limits them here.
    """

    def __init__(
        self, handler: Any, *, sessions: _ClientSessions, data_size_limit: int, **kwargs: Any
    ) -> None:
        # Read by SMTP.__init__ for its StreamReader: a line past it is read as "too long".
        self.line_length_limit = data_size_limit + len(b"..\r\n")
        super().__init__(handler, data_size_limit=data_size_limit, **kwargs)
        self._sessions = sessions
        self._client: str | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        new_client = self.transport is None  # STARTTLS calls this again for the same client
        super().connection_made(transport)
        if not new_client:
            return
        peer = transport.get_extra_info("peername")
        host = str(peer[0]) if peer else ""
        if self._sessions.enter(host):
            self._client = host
            return
        assert self._handler_coroutine is not None
        self._handler_coroutine.cancel()  # before it greets
        cast(asyncio.WriteTransport, transport).write(f"{TOO_MANY_SESSIONS}\r\n".encode())
        transport.close()

    def connection_lost(self, error: Exception | None) -> None:
        if self._client is not None:
            self._sessions.leave(self._client)
            self._client = None
        super().connection_lost(error)

    async def push(self, status: AnyStr) -> None:
        if isinstance(status, str) and status.startswith(("552 Error", "500 Line too long")):
            status = TOO_BIG  # a line over the limit is a message over it
        await super().push(status)


class _Controller(Controller):
    def __init__(self, handler: Any, *, sessions_per_client: int, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self._sessions = _ClientSessions(sessions_per_client)

    def factory(self) -> SMTP:
        return _SMTP(self.handler, sessions=self._sessions, **self.SMTP_kwargs)


class _Handler:
    """aiosmtpd hooks: RCPT filtering, then parse, classify and hand over at DATA."""

    def __init__(self, owner: InboundSmtpServer) -> None:
        self._owner = owner

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        parsed = parse_reply_address(address, self._owner.reply_domain)
        if parsed is None and not (self._owner.has_postmaster and self._owner.is_postmaster(address)):
            return UNKNOWN_RECIPIENT
        try:
            known = parsed is None or await self._owner._is_known(parsed)
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
        postmaster = any(self._owner.is_postmaster(rcpt) for rcpt in envelope.rcpt_tos)
        owner = self._owner
        read = asyncio.to_thread(
            _read, raw, list(envelope.rcpt_tos), owner.reply_domain, mail_from, owner.authserv_id
        )
        try:
            # Off this loop, which serves every other SMTP session, and bounded in time.
            replies, reason = await asyncio.wait_for(read, owner.parse_seconds)
        except TimeoutError:  # an overloaded machine, not a bad message: the sender retries later
            log.warning("inbound e-mail not parsed within %.0f s: answered 451", owner.parse_seconds)
            return TRY_LATER
        except Exception:  # a message we cannot read will never become readable: bounce it
            log.exception("inbound e-mail refused: it could not be parsed")
            return UNPARSABLE
        if reason and not postmaster:
            # No addresses or tokens in the log: the reason is what an operator needs.
            log.info("inbound e-mail is automatic (%s): accepted and ignored", reason)
            return "250 2.0.0 OK: automatic message ignored"
        try:
            if postmaster:
                await self._owner._forward(raw, mail_from)
            for reply in replies:
                await self._owner._deliver(reply)
        except Exception as exc:  # the inbox failed: make the sender retry rather than lose the reply
            log.warning("inbound e-mail handler failed (%s): answered 451", type(exc).__name__, exc_info=True)
            return TRY_LATER
        return "250 2.0.0 OK"


def _read(
    raw: bytes, recipients: list[str], domain: str, mail_from: str, authserv_id: str
) -> tuple[list[InboundMessage], str]:
    """The replies in one message, each with its sender checked, or why it is automatic (then none)."""
    message = parse_message(raw)
    reason = is_automatic(message, mail_from)
    replies = [] if reason else replies_from(message, raw, recipients, domain, mail_from=mail_from)
    return with_sender_check(replies, message, authserv_id), reason


class InboundSmtpServer:
    """An SMTP listener for `reply+<update_id>.<token>@<reply_domain>` that calls `on_message`.

    `port=0` picks a free port (read `.port` after `start()`). `tls_context` offers STARTTLS.
    `max_bytes` is advertised as SIZE (RFC 1870) and enforced with `552 5.3.4`. A message not
    parsed within `parse_seconds` is answered `451` (the sender retries), never bounced. A client
    silent for `idle_timeout` seconds is disconnected; one address gets `sessions_per_client` at once.
    With `authserv_id` (the DMARC-checking MTA in front), each reply records whether that MTA found
    its From authentic.
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
        parse_seconds: float = PARSE_SECONDS,
        known_address: KnownAddress | None = None,
        on_postmaster: OnPostmaster | None = None,
        authserv_id: str = "",
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
        sessions_per_client: int = DEFAULT_SESSIONS_PER_CLIENT,
    ) -> None:
        self.host = host
        self.port = port
        self.reply_domain = reply_domain
        self.max_bytes = max_bytes
        self.handler_timeout = handler_timeout
        self.idle_timeout = idle_timeout
        self.sessions_per_client = sessions_per_client
        self.parse_seconds = parse_seconds
        self._requested_port = port
        self._on_message = on_message
        self._known_address = known_address
        self._on_postmaster = on_postmaster
        self.authserv_id = authserv_id
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
                timeout=self.idle_timeout,
                sessions_per_client=self.sessions_per_client,
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

    @property
    def has_postmaster(self) -> bool:
        return self._on_postmaster is not None

    def is_postmaster(self, address: str) -> bool:
        """`postmaster@<reply_domain>` or a bare `postmaster`, in any case (RFC 5321 §4.5.1)."""
        local, at, domain = address.strip().strip("<>").rpartition("@")
        if not at:
            local, domain = domain, self.reply_domain
        same_domain = domain.lower().rstrip(".") == self.reply_domain.lower().rstrip(".")
        return local.lower() == "postmaster" and same_domain

    async def _is_known(self, address: ReplyAddress) -> bool:
        """Whether we sent `address` (always, when no `known_address` was given)."""
        check = self._known_address
        return True if check is None else bool(await self._on_loop(lambda: check(address)))

    async def _deliver(self, reply: InboundMessage) -> None:
        await self._on_loop(lambda: self._on_message(reply))

    async def _forward(self, raw: bytes, mail_from: str) -> None:
        forward = self._on_postmaster
        assert forward is not None, "postmaster is only accepted with on_postmaster"
        await self._on_loop(lambda: forward(raw, mail_from))

    async def _on_loop(self, call: Callable[[], Awaitable[object]]) -> object:
        """Run `call()` on the owner's loop and wait for it from the SMTP thread."""
        if self._loop is None:
            raise RuntimeError("InboundSmtpServer is not started")

        async def run() -> object:
            return await call()

        future = asyncio.run_coroutine_threadsafe(run(), self._loop)
        return await asyncio.wait_for(asyncio.wrap_future(future), self.handler_timeout)


def _free_port(host: str) -> int:
    """A port that was free a moment ago (aiosmtpd's Controller cannot bind port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])
