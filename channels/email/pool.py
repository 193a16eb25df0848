"""A pool of reused SMTP connections (aiosmtplib), at most `pool_size` open at once.

`aiosmtplib.send()` opens and closes a connection per message, which halves throughput and
makes relays throttle us; here a connection (TCP + TLS + AUTH) is opened lazily, then reused
for every following message until it fails, sits idle too long, or the pool is closed.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import aiosmtplib

from channels.email.settings import EmailSettings

T = TypeVar("T")

#: Reconnect instead of reusing a connection idle this long: RFC 5321 §4.5.3.2.7 lets a server
#: drop an idle client after 5 minutes, and busy relays often do it much sooner.
IDLE_SECONDS = 60.0

#: Errors the server answered with a reply code; aiosmtplib has already sent RSET, so the
#: connection is still good for the next message.
_REPLY_ERRORS = (aiosmtplib.SMTPResponseException, aiosmtplib.SMTPRecipientsRefused)


class SmtpConfigError(Exception):
    """The e-mail settings cannot work as written (e.g. an unreadable `ca_file`); message is safe."""


class PoolClosed(Exception):
    """`aclose()` was called: the pool opens no new connection."""


@dataclass(slots=True)
class _Idle:
    client: aiosmtplib.SMTP
    since: float


class SmtpPool:
    """At most `settings.pool_size` connected clients, opened lazily and reused (LIFO).

    `await pool.run(lambda smtp: smtp.send_message(msg))` borrows a connection, and if a reused
    one turns out to be closed by the server, reconnects once before letting the error through.
    """

    def __init__(self, settings: EmailSettings) -> None:
        self._settings = settings
        self._slots = asyncio.Semaphore(settings.pool_size)
        self._idle: list[_Idle] = []
        self._tls_context: ssl.SSLContext | None = None
        self._closed = False
        #: Connections opened since start; lets a benchmark or a test see reuse at work.
        self.opened = 0

    def __repr__(self) -> str:
        s = self._settings
        return f"SmtpPool({s.host}:{s.port}, size={s.pool_size}, idle={len(self._idle)})"

    async def open(self) -> aiosmtplib.SMTP:
        """Open one new connection: connect, STARTTLS or implicit TLS, then AUTH when configured."""
        if self._closed:
            raise PoolClosed("the e-mail channel is shut down")
        s = self._settings
        tls_context = await self._tls() if s.security != "none" else None
        login = bool(s.username)
        client = aiosmtplib.SMTP(
            hostname=s.host,
            port=s.port,
            username=s.username if login else None,
            password=s.password.get_secret_value() if login and s.password is not None else None,
            # Without it aiosmtplib calls socket.getfqdn(), a slow reverse DNS lookup.
            local_hostname=s.local_hostname,
            timeout=s.timeout_seconds,
            use_tls=s.security == "tls",
            start_tls=s.security == "starttls",
            tls_context=tls_context,
        )
        await client.connect()  # on failure aiosmtplib closes the transport itself
        self.opened += 1
        return client

    async def run(self, operation: Callable[[aiosmtplib.SMTP], Awaitable[T]]) -> T:
        """Run `operation` on a pooled connection; a connection that errors is closed and dropped."""
        async with self._slots:
            client, reused = self._checkout()
            try:
                if client is None:
                    client = await self.open()
                try:
                    result = await operation(client)
                except aiosmtplib.SMTPServerDisconnected:
                    if not reused:
                        raise
                    # The server hung up on a connection we kept: reconnect once, transparently.
                    client.close()
                    client = await self.open()
                    result = await operation(client)
            except BaseException as exc:
                if client is not None:
                    if isinstance(exc, _REPLY_ERRORS):
                        self._checkin(client)
                    else:
                        client.close()
                raise
            self._checkin(client)
            return result

    async def aclose(self) -> None:
        """Say QUIT on every idle connection and refuse new ones; borrowed ones close on return."""
        self._closed = True
        idle, self._idle = self._idle, []
        await asyncio.gather(*(self._quit(entry.client) for entry in idle))

    def _checkout(self) -> tuple[aiosmtplib.SMTP | None, bool]:
        now = time.monotonic()
        while self._idle:
            entry = self._idle.pop()
            if entry.client.is_connected and now - entry.since < IDLE_SECONDS:
                return entry.client, True
            entry.client.close()
        return None, False

    def _checkin(self, client: aiosmtplib.SMTP) -> None:
        if self._closed or not client.is_connected:
            client.close()
            return
        self._idle.append(_Idle(client, time.monotonic()))

    async def _quit(self, client: aiosmtplib.SMTP) -> None:
        try:
            await client.quit(timeout=min(self._settings.timeout_seconds, 5.0))
        except (aiosmtplib.SMTPException, OSError):
            pass  # the server is already gone: closing our side is all that is left
        finally:
            client.close()

    async def _tls(self) -> ssl.SSLContext:
        if self._tls_context is None:
            # Loading CA files is blocking file I/O: keep it off the event loop.
            self._tls_context = await asyncio.to_thread(self._build_tls_context)
        return self._tls_context

    def _build_tls_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context()  # system CAs, hostname checking on
        if self._settings.ca_file:
            try:
                context.load_verify_locations(cafile=self._settings.ca_file)
            except (OSError, ssl.SSLError) as exc:
                reason = getattr(exc, "strerror", None) or "not a PEM certificate bundle"
                raise SmtpConfigError(
                    f"cannot use channels.email.ca_file {self._settings.ca_file!r}: {reason}"
                ) from None
        return context
