"""A real IMAP4rev1 server for tests: one mailbox of RFC 822 messages, in its own thread and loop.

    with ImapPeer(tls="implicit") as peer:
        peer.append(raw_bytes)  # returns the UID given to it
        ...  # point EmailSettings.imap_* at peer.host / peer.port / peer.ca_file
        peer.change_uidvalidity()  # the mailbox was rebuilt: new UIDs for every message

It speaks what a polling client needs (RFC 3501): CAPABILITY, NOOP, LOGOUT, STARTTLS, LOGIN,
SELECT / EXAMINE, UID SEARCH and UID FETCH (UID, FLAGS, RFC822.SIZE, RFC822, BODY[] and
BODY.PEEK[]). Nothing it is sent can delete a message. `commands` records every command name,
so a test can prove a client never asked for more than that.
"""

from __future__ import annotations

import asyncio
import re
import ssl
import tempfile
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Literal, Self

import trustme

__all__ = ["ImapPeer"]

TlsMode = Literal["implicit", "starttls"] | None

_START_TIMEOUT = 10.0
_STOP_TIMEOUT = 10.0
_MAX_COMMANDS = 10_000  # per connection: a runaway client is hung up on
_MAX_LINE = 64 * 1024
_ATOM_OR_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"|(\S+)')
_FETCH_ITEMS = ("UID", "FLAGS", "RFC822.SIZE", "RFC822", "BODY[]", "BODY.PEEK[]")


@dataclass
class _Stored:
    uid: int
    raw: bytes
    seen: bool = False


class _Session:
    """One client connection: NONAUTH → AUTH → SELECTED, as in RFC 3501 §3."""

    def __init__(self, peer: ImapPeer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.peer = peer
        self.reader = reader
        self.writer = writer
        self.tls = peer.tls == "implicit"
        self.authenticated = False
        self.selected = False
        self.read_only = False

    async def serve(self) -> None:
        capabilities = " ".join(self.peer._capabilities(self.tls))
        await self._send(f"* OK [CAPABILITY {capabilities}] test IMAP peer ready")
        for _ in range(_MAX_COMMANDS):
            line = await self.reader.readline()
            if not line:
                return
            tag, _, rest = line.decode("utf-8", errors="replace").rstrip("\r\n").partition(" ")
            name, _, args = rest.partition(" ")
            name = name.upper()
            if name == "UID":
                sub, _, args = args.partition(" ")
                name = f"UID {sub.upper()}"
            self.peer._record(name)
            if not await self._dispatch(tag, name, args):
                return

    async def _dispatch(self, tag: str, name: str, args: str) -> bool:
        """Answer one command; False once the connection must end."""
        handlers: dict[str, Callable[[str, str], Awaitable[None]]] = {
            "CAPABILITY": self._capability,
            "NOOP": self._noop,
            "LOGIN": self._login,
            "SELECT": self._select,
            "EXAMINE": self._select,
            "UID SEARCH": self._uid_search,
            "UID FETCH": self._uid_fetch,
        }
        if name == "LOGOUT":
            await self._send("* BYE logging out")
            await self._send(f"{tag} OK LOGOUT completed")
            return False
        if name == "STARTTLS":
            await self._starttls(tag)
            return True
        handler = handlers.get(name)
        if handler is None:
            await self._send(f"{tag} BAD unknown command {name}")
            return True
        await handler(tag, args)
        return True

    async def _capability(self, tag: str, args: str) -> None:
        await self._send("* CAPABILITY " + " ".join(self.peer._capabilities(self.tls)))
        await self._send(f"{tag} OK CAPABILITY completed")

    async def _noop(self, tag: str, args: str) -> None:
        if self.selected:
            await self._send(f"* {self.peer._count()} EXISTS")
        await self._send(f"{tag} OK NOOP completed")

    async def _starttls(self, tag: str) -> None:
        if self.peer.tls != "starttls" or self.tls:
            await self._send(f"{tag} BAD STARTTLS not available")
            return
        await self._send(f"{tag} OK begin TLS negotiation now")
        assert self.peer._server_tls is not None
        await self.writer.start_tls(self.peer._server_tls)
        self.tls = True

    async def _login(self, tag: str, args: str) -> None:
        if self.peer.tls == "starttls" and not self.tls:
            await self._send(f"{tag} NO [PRIVACYREQUIRED] LOGIN is disabled before STARTTLS")
            return
        words = _strings(args)
        if len(words) != 2:
            await self._send(f"{tag} BAD LOGIN expects a user name and a password")
            return
        if (words[0], words[1]) != (self.peer.username, self.peer.password):
            await self._send(f"{tag} NO [AUTHENTICATIONFAILED] Invalid credentials (Failure)")
            return
        self.authenticated = True
        await self._send(f"{tag} OK [CAPABILITY {' '.join(self.peer._capabilities(True))}] logged in")

    async def _select(self, tag: str, args: str) -> None:
        if not self.authenticated:
            await self._send(f"{tag} BAD log in first")
            return
        names = _strings(args)
        if len(names) != 1 or names[0].upper() != self.peer.mailbox.upper():
            self.selected = False
            await self._send(f"{tag} NO [NONEXISTENT] no such mailbox")
            return
        uidvalidity, uidnext, count = self.peer._status()
        self.selected = True
        await self._send(r"* FLAGS (\Answered \Flagged \Deleted \Seen \Draft)")
        await self._send(f"* {count} EXISTS")
        await self._send("* 0 RECENT")
        await self._send(f"* OK [UIDVALIDITY {uidvalidity}] UIDs valid")
        await self._send(f"* OK [UIDNEXT {uidnext}] predicted next UID")
        await self._send(f"{tag} OK [READ-WRITE] SELECT completed")

    async def _uid_search(self, tag: str, args: str) -> None:
        if not self.selected:
            await self._send(f"{tag} BAD select a mailbox first")
            return
        words = args.split()
        if len(words) >= 2 and words[0].upper() == "CHARSET":
            words = words[2:]
        messages = self.peer._snapshot()
        if words == ["ALL"] or not words:
            uids = [m.uid for m in messages]
        elif len(words) == 2 and words[0].upper() == "UID":
            wanted = _uid_set(words[1], messages[-1].uid if messages else 0)
            uids = [m.uid for m in messages if wanted(m.uid)]
        else:
            await self._send(f"{tag} BAD unsupported search criteria")
            return
        await self._send("* SEARCH" + "".join(f" {uid}" for uid in uids))
        await self._send(f"{tag} OK SEARCH completed")

    async def _uid_fetch(self, tag: str, args: str) -> None:
        if not self.selected:
            await self._send(f"{tag} BAD select a mailbox first")
            return
        spec, _, items_text = args.partition(" ")
        items = items_text.strip().removeprefix("(").removesuffix(")").upper().split()
        if not items or any(item not in _FETCH_ITEMS for item in items):
            await self._send(f"{tag} BAD unsupported fetch items")
            return
        messages = self.peer._snapshot()
        wanted = _uid_set(spec, messages[-1].uid if messages else 0)
        for number, message in enumerate(messages, start=1):
            if wanted(message.uid):
                await self._send_fetch(number, message, items)
        await self._send(f"{tag} OK FETCH completed")

    async def _send_fetch(self, number: int, message: _Stored, items: list[str]) -> None:
        parts = [f"UID {message.uid}"]  # always sent with UID FETCH (RFC 3501 §6.4.8)
        body: bytes | None = None
        body_name = ""
        for item in items:
            if item == "FLAGS":
                parts.append("FLAGS (\\Seen)" if message.seen else "FLAGS ()")
            elif item == "RFC822.SIZE":
                parts.append(f"RFC822.SIZE {len(message.raw)}")
            elif item in ("RFC822", "BODY[]", "BODY.PEEK[]"):
                body, body_name = message.raw, "RFC822" if item == "RFC822" else "BODY[]"
                if item != "BODY.PEEK[]":
                    self.peer._mark_seen(message.uid)
        head = f"* {number} FETCH ({' '.join(parts)}"
        if body is None:
            await self._send(head + ")")
            return
        self.writer.write(f"{head} {body_name} {{{len(body)}}}\r\n".encode() + body + b")\r\n")
        await self.writer.drain()

    async def _send(self, line: str) -> None:
        self.writer.write(line.encode("utf-8") + b"\r\n")
        await self.writer.drain()


def _strings(args: str) -> list[str]:
    """IMAP astrings (atoms or quoted strings with backslash escapes), in order."""
    words = []
    for quoted, atom in _ATOM_OR_QUOTED.findall(args):
        words.append(re.sub(r"\\(.)", r"\1", quoted) if atom == "" else atom)
    return words


def _uid_set(spec: str, highest: int) -> Callable[[int], bool]:
    """A predicate for an RFC 3501 sequence set of UIDs ("3", "4:*", "1,5:7"); `*` is `highest`."""
    ranges = []
    for piece in spec.split(","):
        low, _, high = piece.partition(":")
        first = highest if low == "*" else int(low)
        last = first if not high else highest if high == "*" else int(high)
        ranges.append((min(first, last), max(first, last)))
    return lambda uid: any(low <= uid <= high for low, high in ranges)


class ImapPeer:
    """A local IMAP server for one user and one mailbox (`mailbox`, INBOX by default)."""

    def __init__(
        self,
        *,
        username: str = "replies@shop.example",
        password: str = "imap-s3cret",
        mailbox: str = "INBOX",
        tls: TlsMode = None,
        uidvalidity: int = 1_700_000_000,
        host: str = "127.0.0.1",
    ) -> None:
        self.username = username
        self.password = password
        self.mailbox = mailbox
        self.tls = tls
        self.host = host
        self.port = 0
        self.ca_file = ""
        self._lock = threading.Lock()
        self._messages: list[_Stored] = []
        self._uidvalidity = uidvalidity
        self._next_uid = 1
        self._commands: list[str] = []
        self._server_tls: ssl.SSLContext | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._sessions: dict[asyncio.Task[None], asyncio.StreamWriter] = {}

    # -- lifecycle -------------------------------------------------------------------------

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> Self:
        """Listen on an ephemeral port of `host`; returns once connections are accepted."""
        if self.tls:
            self._server_tls = self._tls_context()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="imap-peer", daemon=True)
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._listen(), self._loop)
        try:
            future.result(timeout=_START_TIMEOUT)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Hang up on every client, stop the thread, delete the certificate files; safe to repeat."""
        loop, thread = self._loop, self._thread
        self._loop, self._thread = None, None
        if loop is not None and thread is not None:
            asyncio.run_coroutine_threadsafe(self._close(), loop).result(timeout=_STOP_TIMEOUT)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=_STOP_TIMEOUT)
            loop.close()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    # -- what the tests do and read --------------------------------------------------------

    def append(self, raw: bytes) -> int:
        """Deliver one RFC 822 message into the mailbox; returns its UID."""
        with self._lock:
            uid = self._next_uid
            self._next_uid += 1
            self._messages.append(_Stored(uid, raw))
            return uid

    def change_uidvalidity(self) -> int:
        """Renumber every message from UID 1 under a new UIDVALIDITY (a rebuilt mailbox)."""
        with self._lock:
            self._uidvalidity += 1
            for uid, message in enumerate(self._messages, start=1):
                message.uid = uid
            self._next_uid = len(self._messages) + 1
            return self._uidvalidity

    @property
    def uidvalidity(self) -> int:
        with self._lock:
            return self._uidvalidity

    @property
    def commands(self) -> list[str]:
        """Every command name received so far ("LOGIN", "UID FETCH"…), in order."""
        with self._lock:
            return list(self._commands)

    @property
    def seen(self) -> list[int]:
        """UIDs whose \\Seen flag a fetch has set (BODY.PEEK[] never does)."""
        with self._lock:
            return [m.uid for m in self._messages if m.seen]

    # -- called from the server thread -----------------------------------------------------

    def _capabilities(self, secure: bool) -> list[str]:
        if self.tls == "starttls" and not secure:
            return ["IMAP4rev1", "STARTTLS", "LOGINDISABLED"]
        return ["IMAP4rev1", "UIDPLUS"]

    def _record(self, name: str) -> None:
        with self._lock:
            self._commands.append(name)

    def _snapshot(self) -> list[_Stored]:
        with self._lock:
            return [_Stored(m.uid, m.raw, m.seen) for m in self._messages]

    def _status(self) -> tuple[int, int, int]:
        with self._lock:
            return self._uidvalidity, self._next_uid, len(self._messages)

    def _count(self) -> int:
        with self._lock:
            return len(self._messages)

    def _mark_seen(self, uid: int) -> None:
        with self._lock:
            for message in self._messages:
                if message.uid == uid:
                    message.seen = True

    async def _listen(self) -> None:
        ssl_context = self._server_tls if self.tls == "implicit" else None
        self._server = await asyncio.start_server(
            self._accept, self.host, 0, ssl=ssl_context, limit=_MAX_LINE
        )
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._sessions[task] = writer
        try:
            await _Session(self, reader, writer).serve()
        except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError, ValueError):
            pass  # the client went away or sent garbage: only this connection ends
        finally:
            del self._sessions[task]
            writer.transport.abort()  # abort, not close: a TLS close would wait for close_notify

    async def _close(self) -> None:
        """Stop listening, hang up on every client (their reads end) and wait for their sessions."""
        if self._server is not None:
            self._server.close()
        sessions = dict(self._sessions)
        for writer in sessions.values():
            writer.transport.abort()
        if sessions:
            await asyncio.wait(sessions, timeout=_STOP_TIMEOUT)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    def _tls_context(self) -> ssl.SSLContext:
        ca = trustme.CA()
        cert = ca.issue_cert(self.host, "localhost")
        self._tmp = tempfile.TemporaryDirectory(prefix="imap-peer-")
        ca_path = Path(self._tmp.name) / "ca.pem"
        ca.cert_pem.write_to_path(str(ca_path))
        self.ca_file = str(ca_path)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert.configure_cert(context)
        return context
