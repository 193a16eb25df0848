"""A real SMTP server for tests and benchmarks: aiosmtpd in its own thread, with fault injection.

    with SmtpPeer(auth=("bot", "s3cret"), tls="starttls") as peer:
        ...  # point EmailSettings at peer.host / peer.port, trust peer.ca_file
        assert peer.wait_for(1, timeout=5)
        envelope_from, rcpt_tos, message = peer.messages[0]

Every accepted message is parsed with `email.policy.default`; `connections` counts TCP
connections so a test can prove a client pool reuses them.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import tempfile
import threading
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, cast

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

TlsMode = Literal["starttls", "implicit"] | None
Received = tuple[str, list[str], EmailMessage]

_START_ATTEMPTS = 5  # another process may grab the port between our probe and the bind


def free_port(host: str = "127.0.0.1") -> int:
    """A port that was free a moment ago (aiosmtpd's Controller cannot bind port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


class _Controller(Controller):
    """A Controller that tells the peer about every new connection."""

    def __init__(self, peer: SmtpPeer, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._peer = peer

    def factory(self) -> SMTP:
        server = cast(SMTP, super().factory())
        self._peer._on_connection(server)
        return server


class _Handler:
    """aiosmtpd hooks; all state lives in the peer, behind its lock."""

    def __init__(self, peer: SmtpPeer) -> None:
        self._peer = peer

    async def handle_NOOP(self, server: SMTP, session: Session, envelope: Envelope, arg: str) -> str:
        return self._peer._refusal() or "250 OK"

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        await self._peer._delay()
        refusal = self._peer._refusal()
        if refusal:
            return refusal
        # aiosmtpd enforces AUTH itself only together with STARTTLS; enforce it for every mode.
        if self._peer.auth is not None and not session.authenticated:
            return "530 5.7.0 Authentication required"
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        await self._peer._delay()
        failure = self._peer._refusal() or self._peer._transient() or self._peer._rejection(address)
        if failure:
            return failure
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        await self._peer._delay()
        failure = self._peer._refusal() or self._peer._transient()
        if failure:
            return failure
        raw = envelope.original_content or b""
        parsed = cast(EmailMessage, message_from_bytes(raw, policy=policy.default))
        self._peer._record((envelope.mail_from or "", list(envelope.rcpt_tos), parsed))
        return "250 2.0.0 Ok: queued"


class SmtpPeer:
    """A local SMTP server with optional AUTH (LOGIN/PLAIN), STARTTLS or implicit TLS, and faults."""

    def __init__(
        self,
        *,
        auth: tuple[str, str] | None = None,
        tls: TlsMode = None,
        reply_delay: float = 0.0,
        host: str = "127.0.0.1",
    ) -> None:
        self.auth = auth
        self.tls = tls
        self.reply_delay = reply_delay
        self.host = host
        self.port = 0
        self.ca_file = ""
        self._cond = threading.Condition()
        self._messages: list[Received] = []
        self._connections = 0
        self._servers: list[SMTP] = []
        self._fail_left = 0
        self._fail_reply = ""
        self._rejected: dict[str, str] = {}
        self._refuse_reply = ""
        self._controller: _Controller | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def __enter__(self) -> SmtpPeer:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Bind a free port and serve in a background thread (returns once it accepts connections)."""
        server_tls = self._tls_context() if self.tls else None
        for attempt in range(_START_ATTEMPTS):
            self.port = free_port(self.host)
            controller = self._make_controller(server_tls)
            try:
                controller.start()
            except OSError:
                controller.loop.close()
                if attempt == _START_ATTEMPTS - 1:
                    raise
                continue
            self._controller = controller
            break
        with self._cond:
            self._connections = 0  # Controller.start() opens one probe connection itself

    def stop(self) -> None:
        """Drop every client connection, stop the server thread, delete the certificate files."""
        if self._controller is not None:
            self.drop_connections()
            self._controller.stop()
            self._controller = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    # -- what the tests read ---------------------------------------------------------------

    @property
    def messages(self) -> list[Received]:
        """Accepted messages so far: (envelope sender, envelope recipients, parsed message)."""
        with self._cond:
            return list(self._messages)

    @property
    def connections(self) -> int:
        """TCP connections accepted since start."""
        with self._cond:
            return self._connections

    def wait_for(self, count: int, timeout: float) -> bool:
        """Block until at least `count` messages were accepted; False when `timeout` runs out."""
        with self._cond:
            return self._cond.wait_for(lambda: len(self._messages) >= count, timeout)

    # -- fault injection -------------------------------------------------------------------

    def fail_next(self, n: int, code: int = 451, text: str = "4.3.0 Temporary failure, try later") -> None:
        """The next `n` RCPT or DATA commands get `code text` (a transient error by default)."""
        with self._cond:
            self._fail_left = n
            self._fail_reply = f"{code} {text}"

    def reject(self, address: str, code: int = 550, text: str = "5.1.1 mailbox unavailable") -> None:
        """RCPT TO `address` is refused for good with `code text`."""
        with self._cond:
            self._rejected[address.lower()] = f"{code} {text}"

    def refuse_all(self, code: int = 421, text: str = "4.3.2 Service not available, closing channel") -> None:
        """Every MAIL, RCPT, DATA and NOOP gets `code text` until `recover()`."""
        with self._cond:
            self._refuse_reply = f"{code} {text}"

    def recover(self) -> None:
        """Undo `refuse_all`, `fail_next` and `reject`."""
        with self._cond:
            self._refuse_reply = ""
            self._fail_left = 0
            self._rejected.clear()

    def drop_connections(self) -> None:
        """Hang up on every connected client, as a server does with idle clients."""
        controller = self._controller
        if controller is None:
            return
        future = asyncio.run_coroutine_threadsafe(self._abort_all(), controller.loop)
        future.result(timeout=5.0)

    # -- called from the server thread -------------------------------------------------------

    def _on_connection(self, server: SMTP) -> None:
        with self._cond:
            self._connections += 1
            self._servers = [
                s for s in self._servers if s.transport is not None and not s.transport.is_closing()
            ]
            self._servers.append(server)

    async def _abort_all(self) -> None:
        with self._cond:
            servers, self._servers = self._servers, []
        for server in servers:
            if server.transport is not None:
                # abort(), not close(): a TLS close waits for the client's close_notify.
                server.transport.abort()  # type: ignore[attr-defined]
        await asyncio.sleep(0)  # let connection_lost callbacks run before the loop may stop

    async def _delay(self) -> None:
        if self.reply_delay > 0:
            await asyncio.sleep(self.reply_delay)  # simulated server latency, not synchronisation

    def _refusal(self) -> str:
        with self._cond:
            return self._refuse_reply

    def _transient(self) -> str:
        with self._cond:
            if self._fail_left <= 0:
                return ""
            self._fail_left -= 1
            return self._fail_reply

    def _rejection(self, address: str) -> str:
        with self._cond:
            return self._rejected.get(address.lower(), "")

    def _record(self, received: Received) -> None:
        with self._cond:
            self._messages.append(received)
            self._cond.notify_all()

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        if self.auth is None or mechanism not in ("LOGIN", "PLAIN") or not isinstance(data, LoginPassword):
            return AuthResult(success=False, handled=False)
        ok = (data.login.decode(), data.password.decode()) == self.auth
        return AuthResult(success=ok, handled=False, auth_data=data.login.decode() if ok else None)

    # -- setup -------------------------------------------------------------------------------

    def _tls_context(self) -> ssl.SSLContext:
        ca = trustme.CA()
        cert = ca.issue_cert(self.host, "localhost")
        self._tmp = tempfile.TemporaryDirectory(prefix="smtp-peer-")
        ca_path = Path(self._tmp.name) / "ca.pem"
        ca.cert_pem.write_to_path(str(ca_path))
        self.ca_file = str(ca_path)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(context)
        return context

    def _make_controller(self, server_tls: ssl.SSLContext | None) -> _Controller:
        kwargs: dict[str, Any] = {
            "handler": _Handler(self),
            "hostname": self.host,
            "port": self.port,
            # A fixed name: the default is socket.getfqdn(), a slow DNS lookup per connection.
            "server_hostname": "peer.localhost",
            "authenticator": self._authenticate if self.auth else None,
            # aiosmtpd only sees STARTTLS as "TLS"; with implicit TLS or none, MAIL checks AUTH.
            "auth_require_tls": self.tls == "starttls",
        }
        if self.tls == "starttls":
            kwargs.update(tls_context=server_tls, require_starttls=True, auth_required=self.auth is not None)
        elif self.tls == "implicit":
            kwargs["ssl_context"] = server_tls
        return _Controller(self, **kwargs)
