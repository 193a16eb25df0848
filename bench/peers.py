"""Run a local protocol peer (SMTP or Telegram Bot API) in its own process, for benchmarks.

A peer in the benchmark's own process would share its GIL, and the figure would measure the
peer as much as the broadcaster. The child speaks a line protocol on stdin/stdout:

    child → READY <port> <url>      once it accepts connections
    parent → count                  child → COUNT <messages accepted so far>
    parent → wait <n> <seconds>     child → COUNT <n'> once n' >= n, or at the timeout
    parent → refused                child → COUNT <429s answered so far> (Telegram with --enforce)
    parent → arrivals <i> <seconds> child → ARRIVALS <chat>@<time> … : every sendMessage from the
                                    i-th on (waiting up to <seconds> for one), stamped by the peer
                                    with time.time() as it arrived (Telegram only)
    parent → quit (or stdin EOF)    child stops; so a killed parent never leaves a peer behind

Arrival times are time.time(): a system-wide clock, so the parent can subtract its own
time.time() from them (bench/inbox.py measures the status bot's answer latency per chat so).

Kinds: "telegram" (tests.peers.telegram.TelegramPeer), "smtp" (tests.peers.smtp.SmtpPeer, which
parses every message) and "smtp-fast" (aiosmtpd that only counts messages: see `_CountingSmtp`).

    with PeerProcess("smtp-fast", latency=0.02) as peer:
        ...  # send to 127.0.0.1:peer.port
        assert peer.wait_for(1000, timeout=30) == 1000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import selectors
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Protocol
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
PeerKind = Literal["smtp", "smtp-fast", "telegram"]
TELEGRAM_TOKEN = "123:BENCH"
_START_TIMEOUT = 20.0


class PeerError(RuntimeError):
    """The peer process did not start or answer in time, or exited."""


class PeerProcess:
    """A peer in a child process: `port`, `url`, and how many messages it accepted."""

    def __init__(self, kind: PeerKind, *, latency: float = 0.0, enforce: int = 0) -> None:
        self.kind = kind
        self.latency = latency
        self.enforce = enforce  # Telegram: refuse with 429 over this many a second (and 1/s per chat)
        self.port = 0
        self.url = ""
        self._proc: subprocess.Popen[str] | None = None

    def __enter__(self) -> PeerProcess:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Start the child and wait (bounded) for its READY line."""
        path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
        env = {**os.environ, "PYTHONPATH": path}  # the child imports tests.peers from the repo
        self._proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), self.kind, "--latency", str(self.latency)]
            + ["--enforce", str(self.enforce)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env=env,
        )
        words = self._read_line(_START_TIMEOUT).split()
        if len(words) != 3 or words[0] != "READY":
            self.stop()
            raise PeerError(f"{self.kind} peer did not start: {' '.join(words)!r}")
        self.port, self.url = int(words[1]), words[2]

    def count(self) -> int:
        """Messages the peer accepted so far."""
        return self._ask("count", timeout=10.0)

    def refused(self) -> int:
        """429s the peer answered so far (0 unless started with `enforce`)."""
        return self._ask("refused", timeout=10.0)

    def wait_for(self, count: int, timeout: float) -> int:
        """Wait until the peer accepted at least `count` messages (or `timeout`); return its count."""
        return self._ask(f"wait {count} {timeout}", timeout=timeout + 10.0)

    def arrivals(self, since: int, timeout: float) -> list[tuple[str, float]]:
        """(chat id, time.time() it arrived) of each sendMessage from the `since`-th on.

        Waits up to `timeout` for at least one; an empty list means none came meanwhile.
        """
        if self.kind != "telegram":
            raise PeerError(f"only the telegram peer records arrivals, not {self.kind}")
        words = self._command(f"arrivals {since} {timeout}", timeout=timeout + 10.0)
        if not words or words[0] != "ARRIVALS":
            raise PeerError(f"{self.kind} peer answered {' '.join(words)[:200]!r} to 'arrivals'")
        found = []
        for word in words[1:]:
            chat, _, at = word.rpartition("@")  # a chat may be "@channel": its time is after the last @
            found.append((chat, float(at)))
        return found

    def stop(self) -> None:
        """Ask the child to quit; kill it if it does not within 10 s."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            if proc.stdin is not None:
                proc.stdin.write("quit\n")
                proc.stdin.close()
        except (BrokenPipeError, OSError):
            pass  # already gone: nothing left to ask
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()

    def _ask(self, command: str, timeout: float) -> int:
        words = self._command(command, timeout)
        if len(words) != 2 or words[0] != "COUNT":
            raise PeerError(f"{self.kind} peer answered {' '.join(words)!r} to {command!r}")
        return int(words[1])

    def _command(self, command: str, timeout: float) -> list[str]:
        """Send one command line; the words of the child's one-line answer."""
        if self._proc is None or self._proc.stdin is None:
            raise PeerError(f"{self.kind} peer is not running")
        self._proc.stdin.write(command + "\n")
        self._proc.stdin.flush()
        return self._read_line(timeout).split()

    def _read_line(self, timeout: float) -> str:
        assert self._proc is not None and self._proc.stdout is not None
        # Line-buffered text pipe: select tells us a line has started arriving; the child
        # writes whole lines and flushes, so readline() does not block past that.
        with selectors.DefaultSelector() as selector:
            selector.register(self._proc.stdout, selectors.EVENT_READ)
            if not selector.select(timeout):
                raise PeerError(f"{self.kind} peer did not answer within {timeout:g} s")
        line = self._proc.stdout.readline()
        if not line:
            raise PeerError(f"{self.kind} peer exited (code {self._proc.poll()})")
        return line.strip()


# -- ceilings: the most a peer takes from a minimal client (no MIME building, no HTTP library) --


async def smtp_ceiling(port: int, count: int, connections: int, message: bytes) -> float:
    """Send `count` copies of a ready-made `message` over `connections` aiosmtplib clients; msg/s."""
    import aiosmtplib

    async def sender(share: int) -> None:
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, local_hostname="bench.localdomain")
        await client.connect()
        for i in range(share):
            await client.sendmail("status@shop.example", [f"ceiling{i}@clients.example.org"], message)
        await client.quit()

    shares = [count // connections + (i < count % connections) for i in range(connections)]
    started = time.perf_counter()
    await asyncio.gather(*(sender(share) for share in shares))
    return count / (time.perf_counter() - started)


async def bot_api_ceiling(url: str, count: int, in_flight: int, text: str) -> float:
    """POST `count` sendMessage requests over `in_flight` raw keep-alive HTTP/1.1 connections; msg/s."""
    host_port, _, path = url.removeprefix("http://").partition("/")
    host, _, port = host_port.partition(":")
    body = urlencode({"chat_id": "42", "text": text, "parse_mode": "HTML"}).encode()
    request = (
        f"POST /{path}{TELEGRAM_TOKEN}/sendMessage HTTP/1.1\r\nHost: {host_port}\r\n"
        f"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body

    async def connection(share: int) -> None:
        reader, writer = await asyncio.open_connection(host, int(port))
        for _ in range(share):
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200"):
                raise PeerError(f"Bot API peer answered {head.splitlines()[0]!r}")
            length = next(
                int(line.split(b":")[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            await reader.readexactly(length)
        writer.close()
        await writer.wait_closed()

    shares = [count // in_flight + (i < count % in_flight) for i in range(in_flight)]
    started = time.perf_counter()
    await asyncio.gather(*(connection(share) for share in shares))
    return count / (time.perf_counter() - started)


# -- the child --------------------------------------------------------------------------------


class _Served(Protocol):
    port: int
    url: str

    def count(self) -> int: ...
    def refused(self) -> int: ...
    def wait_for(self, count: int, timeout: float) -> bool: ...
    def stop(self) -> None: ...


class _CountingSmtp:
    """aiosmtpd that counts messages without parsing them (the fast SMTP peer, `parse=False`).

    `tests.peers.smtp.SmtpPeer` parses every message with `email.policy.default`, which caps it
    at a few hundred multipart messages/s on its own: that would measure the peer, not us.
    """

    def __init__(self, latency: float) -> None:
        from aiosmtpd.controller import Controller

        from tests.peers.smtp import free_port

        self.latency = latency
        self._cond = threading.Condition()
        self._count = 0
        self.port = free_port()
        self.url = f"smtp://127.0.0.1:{self.port}"
        # A fixed server name: the default is socket.getfqdn(), a slow DNS lookup per connection.
        self._controller = Controller(
            self, hostname="127.0.0.1", port=self.port, server_hostname="peer.localhost"
        )
        self._controller.start()

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        await asyncio.sleep(self.latency)  # simulated server latency, not synchronisation
        envelope.mail_from = address
        return "250 OK"

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        await asyncio.sleep(self.latency)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        await asyncio.sleep(self.latency)
        with self._cond:
            self._count += 1
            self._cond.notify_all()
        return "250 2.0.0 Ok: queued"

    def count(self) -> int:
        with self._cond:
            return self._count

    def refused(self) -> int:
        return 0

    def wait_for(self, count: int, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self._count >= count, timeout)

    def stop(self) -> None:
        self._controller.stop()


class _Adapter:
    """SmtpPeer or TelegramPeer seen through `_Served`."""

    def __init__(self, peer: Any, port: int, url: str, stop: Callable[[], None]) -> None:
        self._peer, self.port, self.url, self.stop = peer, port, url, stop

    def count(self) -> int:
        return len(self._peer.messages)

    def refused(self) -> int:
        flood = getattr(self._peer, "flood", None)
        return flood.refused if flood is not None else 0

    def wait_for(self, count: int, timeout: float) -> bool:
        return bool(self._peer.wait_for(count, timeout))


class _TelegramAdapter(_Adapter):
    """The Bot API peer, which also tells when each sendMessage arrived."""

    def arrivals(self, since: int) -> list[tuple[str, float]]:
        to_wall_clock = time.time() - time.monotonic()  # the peer stamps messages with time.monotonic()
        return [(m["chat_id"], m["received"] + to_wall_clock) for m in self._peer.messages[since:]]


def _start(kind: str, latency: float, enforce: int) -> _Served:
    from tests.peers.smtp import SmtpPeer
    from tests.peers.telegram import TelegramPeer

    if kind == "smtp-fast":
        return _CountingSmtp(latency)
    if kind == "smtp":
        smtp = SmtpPeer(reply_delay=latency)
        smtp.start()
        return _Adapter(smtp, smtp.port, f"smtp://127.0.0.1:{smtp.port}", smtp.stop)
    telegram = TelegramPeer(valid_tokens=(TELEGRAM_TOKEN,), latency=latency).start()
    if enforce:
        telegram.enforce_limits(per_second=enforce)
    return _TelegramAdapter(telegram, telegram.port, telegram.base_url, telegram.stop)


def _serve(kind: str, latency: float, enforce: int) -> None:
    peer = _start(kind, latency, enforce)
    parent = os.getppid()
    try:
        print(f"READY {peer.port} {peer.url}", flush=True)
        for line in sys.stdin:  # EOF: the parent is gone
            words = line.split()
            if not words or words[0] == "quit":
                break
            if words[0] == "arrivals":
                print(_arrivals(peer, int(words[1]), float(words[2]), parent), flush=True)
                continue
            if words[0] == "refused":
                print(f"COUNT {peer.refused()}", flush=True)
                continue
            if words[0] == "wait":
                _wait(peer, int(words[1]), float(words[2]), parent)
            print(f"COUNT {peer.count()}", flush=True)
    finally:
        peer.stop()


def _arrivals(peer: _Served, since: int, timeout: float, parent: int) -> str:
    """The ARRIVALS line: sendMessage calls from the `since`-th on, once there is one (or at the timeout)."""
    if not isinstance(peer, _TelegramAdapter):
        return "ERROR only the telegram peer records arrivals"
    _wait(peer, since + 1, timeout, parent)
    return " ".join(["ARRIVALS", *(f"{chat}@{at:.6f}" for chat, at in peer.arrivals(since))])


def _wait(peer: _Served, count: int, timeout: float, parent: int) -> None:
    """Wait for `count` messages in short slices, giving up early if our parent died meanwhile."""
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0 and os.getppid() == parent:
        if peer.wait_for(count, timeout=min(left, 0.5)):
            return


def _main() -> None:
    parser = argparse.ArgumentParser(description="A local peer in its own process (see bench/peers.py).")
    parser.add_argument("kind", choices=["smtp", "smtp-fast", "telegram"])
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every reply")
    parser.add_argument("--enforce", type=int, default=0, help="Telegram: 429 over this many a second")
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C reaches the child too: the parent reports it
        _serve(args.kind, args.latency, args.enforce)


if __name__ == "__main__":
    _main()
