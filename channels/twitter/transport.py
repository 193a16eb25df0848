"""What tweepy's AsyncClient needs around it: one aiohttp session, a pinned resolver, a post budget.

tweepy hard-codes `https://api.twitter.com`; to reach another endpoint (a local peer, a proxy)
the session's resolver answers `api.twitter.com` with that endpoint's address and port, so TLS
still checks the certificate against the name api.twitter.com.
"""

from __future__ import annotations

import socket
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from channels.base import RateLimited, Rejected
from channels.tls import client_context
from channels.twitter.settings import TwitterSettings

__all__ = ["API_HOST", "PinnedResolver", "PostBudget", "Transport", "api_endpoint", "open_transport"]

API_HOST = "api.twitter.com"
_API_PORT = 443


def api_endpoint(api_base_url: str) -> tuple[str, int] | None:
    """The (host, port) that stands in for api.twitter.com, or None for the real one.

    Raises `ValueError` for a base URL tweepy cannot use (not https, or with a path).
    """
    parts = urlsplit(api_base_url.strip())
    if parts.scheme != "https" or not parts.hostname:
        raise ValueError("channels.twitter.api_base_url must be an https:// URL (tweepy only speaks HTTPS)")
    if parts.path not in ("", "/") or parts.query:
        raise ValueError("channels.twitter.api_base_url must have no path: tweepy's routes start at /2/")
    try:
        port = parts.port or _API_PORT
    except ValueError:
        raise ValueError("channels.twitter.api_base_url has an invalid port") from None
    host = parts.hostname.lower()
    return None if (host, port) == (API_HOST, _API_PORT) else (host, port)


class PinnedResolver(AbstractResolver):
    """Resolves api.twitter.com to `endpoint` (host, port); every other name as usual."""

    def __init__(self, endpoint: tuple[str, int]) -> None:
        self._endpoint = endpoint
        self._fallback = DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if host.rstrip(".").lower() != API_HOST:
            return await self._fallback.resolve(host, port, family)
        target_host, target_port = self._endpoint
        found = await self._fallback.resolve(target_host, target_port, family)
        # Keep the name tweepy asked for: aiohttp checks the certificate against `hostname`.
        return [{**result, "hostname": host, "port": target_port} for result in found]

    async def close(self) -> None:
        await self._fallback.close()


@dataclass(slots=True)
class Transport:
    """The one session tweepy's AsyncClient uses, and the resolver the session does not own."""

    session: aiohttp.ClientSession
    resolver: AbstractResolver | None

    async def close(self) -> None:
        await self.session.close()
        if self.resolver is not None:
            await self.resolver.close()


def open_transport(settings: TwitterSettings) -> Transport:
    """A session with one connection pool; call from a running event loop (aiohttp needs one)."""
    endpoint = api_endpoint(settings.api_base_url)
    resolver = PinnedResolver(endpoint) if endpoint is not None else None
    tls = client_context(settings.ca_file, "channels.twitter.ca_file")
    connector = aiohttp.TCPConnector(ssl=tls, resolver=resolver, limit=16)
    timeout = aiohttp.ClientTimeout(total=settings.timeout_seconds)
    return Transport(aiohttp.ClientSession(connector=connector, timeout=timeout), resolver)


class PostBudget:
    """A sliding-window count of posts: at most `limit` per `window` seconds.

    X allows 100 posts per 15 minutes per user (developer.x.com, "Rate limits", POST /2/tweets);
    refusing locally avoids a thread cut in the middle by a 429.
    """

    def __init__(self, limit: int, window: float, clock: Callable[[], float]) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock
        self._stamps: deque[float] = deque()

    def remaining(self) -> int:
        """Posts still allowed in the current window."""
        self._expire(self._clock())
        return max(0, self.limit - len(self._stamps))

    def reserve(self, count: int) -> float:
        """Take `count` posts or raise `RateLimited` with the seconds until they fit.

        Returns the reservation's stamp for `refund`. A thread longer than `limit` can never fit:
        `Rejected`.
        """
        if count > self.limit:
            raise Rejected(f"a thread of {count} posts exceeds X's budget of {self.limit} posts per window")
        now = self._clock()
        self._expire(now)
        excess = len(self._stamps) + count - self.limit
        if excess > 0:
            # The window frees up when the `excess`-th oldest post leaves it.
            wait = max(1.0, self._stamps[excess - 1] + self.window - now)
            raise RateLimited(
                f"X posting budget used up ({self.limit} per {self.window:g} s): retry after {wait:.0f} s",
                retry_after=wait,
            )
        self._stamps.extend([now] * count)
        return now

    def refund(self, stamp: float, count: int) -> None:
        """Give back `count` posts of the reservation `stamp` that were not made."""
        for _ in range(max(0, count)):
            try:
                self._stamps.remove(stamp)
            except ValueError:  # already expired from the window
                return

    def _expire(self, now: float) -> None:
        while self._stamps and self._stamps[0] <= now - self.window:
            self._stamps.popleft()
