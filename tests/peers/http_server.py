"""Serve a Starlette app with uvicorn on 127.0.0.1, in its own thread and event loop, for the HTTP peers.

The port is bound when the object is built, so a peer knows its URL before it starts, and
`start()` returns only once uvicorn is listening (an event, not polling). A peer keeps its
`ServerThread` in `self._server` and inherits `start`/`stop`/`with` from `ServedPeer`:

>>> class EchoPeer(ServedPeer):
...     def __init__(self) -> None:
...         self._server = ServerThread(Starlette(routes=[...]), "echo-peer")
...         self.base_url = self._server.origin  # known before start()
>>> with EchoPeer() as peer: ...
"""

from __future__ import annotations

import asyncio
import socket
import threading
from types import TracebackType
from typing import Self

import uvicorn
from starlette.applications import Starlette

__all__ = ["ServedPeer", "ServerThread"]

_BACKLOG = 1024  # room for a benchmark's burst of new connections (bench/fanout.py) without refusals
_START_TIMEOUT = 10.0
_STOP_TIMEOUT = 10.0


class _Server(uvicorn.Server):
    """A uvicorn server that says when it is listening (no polling of `started`)."""

    def __init__(self, config: uvicorn.Config, ready: threading.Event) -> None:
        super().__init__(config)
        self._ready = ready

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self._ready.set()


class ServerThread:
    """`app` served by uvicorn on 127.0.0.1:`port` (bound now) in a daemon thread named `name-port`.

    With `ssl_certfile` and `ssl_keyfile` it speaks HTTPS and `origin` starts with `https://`.
    `config` (serving `app`) replaces the peers' own, e.g. the product's `serving_config`; `port`: a
    port known beforehand (an app whose `public_base_url` must name it).
    `start()` waits (bounded) until it listens; `stop()` asks it to exit and joins (bounded).
    """

    def __init__(
        self,
        app: Starlette,
        name: str,
        *,
        ssl_certfile: str | None = None,
        ssl_keyfile: str | None = None,
        config: uvicorn.Config | None = None,
        port: int = 0,
    ) -> None:
        self._ready = threading.Event()
        # proto=IPPROTO_TCP: asyncio only sets TCP_NODELAY on accepted sockets of that proto; without
        # it every response waits ~40 ms for a delayed ACK (Nagle), capping a connection at 25 req/s.
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if hasattr(socket, "TCP_NODELAY"):
            self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock.bind(("127.0.0.1", port))  # 0: any free port
        self.port: int = self._sock.getsockname()[1]
        scheme = "https" if ssl_certfile else "http"
        self.origin = f"{scheme}://127.0.0.1:{self.port}"
        config = config or uvicorn.Config(
            app,
            log_level="warning",
            access_log=False,
            http="httptools",
            loop="asyncio",
            lifespan="off",
            backlog=_BACKLOG,
            ssl_certfile=ssl_certfile,
            ssl_keyfile=ssl_keyfile,
            timeout_graceful_shutdown=5,
        )
        self._server = _Server(config, self._ready)
        self._thread = threading.Thread(target=self._run, name=f"{name}-{self.port}", daemon=True)

    def _run(self) -> None:
        asyncio.run(self._server.serve(sockets=[self._sock]))

    def start(self) -> None:
        """Serve; raise RuntimeError (after stopping) if not listening within 10 s."""
        self._sock.listen(_BACKLOG)  # connections made before uvicorn runs wait in the backlog
        self._thread.start()
        if not self._ready.wait(timeout=_START_TIMEOUT):
            self.stop()
            raise RuntimeError(f"{self._thread.name} did not start within {_START_TIMEOUT:g} s")

    def stop(self) -> None:
        """Ask uvicorn to exit, wait for its thread (bounded) and close the socket; safe to repeat."""
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout=_STOP_TIMEOUT)
        self._sock.close()


class ServedPeer:
    """Lifecycle of a peer whose `_server` is a `ServerThread`: `start()` → the peer, `stop()`, `with`.

    A peer with more to clean up overrides `stop()` (and calls `super().stop()`); a failed
    `start()` calls it too.
    """

    _server: ServerThread

    def start(self) -> Self:
        """Start serving; raise RuntimeError (after `stop()`) if not listening within 10 s."""
        try:
            self._server.start()
        except RuntimeError:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Ask the server to exit and wait for its thread (bounded); safe to repeat."""
        self._server.stop()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
