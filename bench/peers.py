"""Run a local protocol peer (SMTP or Telegram Bot API) in its own process, for benchmarks.

A peer in the benchmark's own process would share its GIL, and the figure would measure the
peer as much as the broadcaster. The child speaks a line protocol on stdin/stdout:

    child → READY <port> <url>      once it accepts connections
    parent → count                  child → COUNT <messages accepted so far>
    parent → wait <n> <seconds>     child → COUNT <n'> once n' >= n, or at the timeout
    parent → quit (or stdin EOF)    child stops; so a killed parent never leaves a peer behind

    with PeerProcess("smtp", latency=0.02) as peer:
        ...  # send to 127.0.0.1:peer.port
        assert peer.wait_for(1000, timeout=30) == 1000
"""

from __future__ import annotations

import argparse
import os
import selectors
import subprocess
import sys
from pathlib import Path
from types import TracebackType
from typing import Literal, Protocol

ROOT = Path(__file__).resolve().parent.parent
PeerKind = Literal["smtp", "telegram"]
TELEGRAM_TOKEN = "123:BENCH"
_START_TIMEOUT = 20.0


class PeerError(RuntimeError):
    """The peer process did not start or answer in time, or exited."""


class PeerProcess:
    """A peer in a child process: `port`, `url`, and how many messages it accepted."""

    def __init__(self, kind: PeerKind, *, latency: float = 0.0) -> None:
        self.kind = kind
        self.latency = latency
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
            [sys.executable, str(Path(__file__).resolve()), self.kind, "--latency", str(self.latency)],
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

    def wait_for(self, count: int, timeout: float) -> int:
        """Wait until the peer accepted at least `count` messages (or `timeout`); return its count."""
        return self._ask(f"wait {count} {timeout}", timeout=timeout + 10.0)

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
        if self._proc is None or self._proc.stdin is None:
            raise PeerError(f"{self.kind} peer is not running")
        self._proc.stdin.write(command + "\n")
        self._proc.stdin.flush()
        words = self._read_line(timeout).split()
        if len(words) != 2 or words[0] != "COUNT":
            raise PeerError(f"{self.kind} peer answered {' '.join(words)!r} to {command!r}")
        return int(words[1])

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


# -- the child --------------------------------------------------------------------------------


class _Peer(Protocol):
    def wait_for(self, count: int, timeout: float) -> bool: ...


def _serve(kind: PeerKind, latency: float) -> None:
    from tests.peers.smtp import SmtpPeer
    from tests.peers.telegram import TelegramPeer

    peer: _Peer
    if kind == "smtp":
        smtp = SmtpPeer(reply_delay=latency)
        smtp.start()
        peer, url, port = smtp, f"smtp://127.0.0.1:{smtp.port}", smtp.port

        def count() -> int:
            return len(smtp.messages)

        stop = smtp.stop
    else:
        telegram = TelegramPeer(valid_tokens=(TELEGRAM_TOKEN,), latency=latency).start()
        peer, url, port = telegram, telegram.base_url, telegram.port

        def count() -> int:
            return len(telegram.messages)

        stop = telegram.stop
    try:
        print(f"READY {port} {url}", flush=True)
        for line in sys.stdin:  # EOF: the parent is gone
            words = line.split()
            if not words or words[0] == "quit":
                break
            if words[0] == "wait":
                peer.wait_for(int(words[1]), timeout=float(words[2]))
            print(f"COUNT {count()}", flush=True)
    finally:
        stop()


def _main() -> None:
    parser = argparse.ArgumentParser(description="A local peer in its own process (see bench/peers.py).")
    parser.add_argument("kind", choices=["smtp", "telegram"])
    parser.add_argument("--latency", type=float, default=0.0, help="seconds added to every reply")
    args = parser.parse_args()
    try:
        _serve(args.kind, args.latency)
    except KeyboardInterrupt:
        pass  # Ctrl-C in the terminal reaches the child too: the parent reports it


if __name__ == "__main__":
    _main()
