"""PTB's transport over one aiohttp session: `Bot(request=AiohttpRequest(...))`.

PTB's default `HTTPXRequest` costs ~2.5 ms of CPU per request on httpx 0.28 / httpcore 1.0.9
(the pool rescans every connection and polls idle sockets on each request: encode/httpcore#1035),
which caps a sender at ~400 msg/s whatever the concurrency; aiohttp's connector does not.
"""

from __future__ import annotations

import os
from typing import Any

import aiohttp
from telegram import Bot
from telegram.error import NetworkError, TimedOut
from telegram.request import BaseRequest, RequestData

__all__ = ["AiohttpRequest", "aiohttp_bot"]


class AiohttpRequest(BaseRequest):
    """At most `connection_pool_size` connections; the session opens lazily on the running loop."""

    def __init__(self, connection_pool_size: int, timeout: float) -> None:
        self._size = connection_pool_size
        self._timeout = timeout
        self._session: aiohttp.ClientSession | None = None

    @property
    def read_timeout(self) -> float | None:
        return self._timeout

    async def initialize(self) -> None:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._size),
                timeout=aiohttp.ClientTimeout(total=None, connect=self._timeout, sock_read=self._timeout),
            )

    async def shutdown(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: Any = BaseRequest.DEFAULT_NONE,
        write_timeout: Any = BaseRequest.DEFAULT_NONE,
        connect_timeout: Any = BaseRequest.DEFAULT_NONE,
        pool_timeout: Any = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        """Send one Bot API call form-encoded (as HTTPXRequest does); errors never carry the URL."""
        await self.initialize()
        assert self._session is not None
        data: Any = None
        if request_data is not None:
            if request_data.contains_files:  # never for broadcasts; sendDocument & co. would need it
                raise NetworkError("AiohttpRequest does not upload files")
            data = request_data.json_parameters
        read = read_timeout if isinstance(read_timeout, int | float) else self._timeout
        timeout = aiohttp.ClientTimeout(total=None, connect=self._timeout, sock_read=read)
        headers = {"User-Agent": self.USER_AGENT}
        try:
            async with self._session.request(
                method, url, data=data, headers=headers, timeout=timeout
            ) as reply:
                return reply.status, await reply.read()
        except TimeoutError:  # `from None` here and below: the URL in the cause holds the bot token
            raise TimedOut("Timed out") from None
        except aiohttp.ClientError as exc:
            raise NetworkError(f"aiohttp: {type(exc).__name__}") from None


def aiohttp_bot(
    token: str, base_url: str, timeout: float, concurrency: int
) -> tuple[Bot, list[AiohttpRequest]]:
    """A PTB Bot over aiohttp (built without I/O), and its two transports to shut down.

    `Bot.initialize()` is never needed to call the API, and it would put the token in its
    InvalidToken message, so it is never called. The second transport serves getUpdates.
    """
    # PTB 22 emits a PTBDeprecationWarning whenever an int time period is read, including inside
    # RetryAfter.__init__ (so a 429 would turn into a warning-as-error under pytest). Opting into
    # timedelta periods (DESIGN §10) is PTB's documented switch, read when a period is; an explicit
    # user setting wins. Set when a bot is made, never at import.
    os.environ.setdefault("PTB_TIMEDELTA", "1")
    transports = [AiohttpRequest(concurrency, timeout), AiohttpRequest(1, timeout)]
    bot = Bot(token, base_url=base_url, request=transports[0], get_updates_request=transports[1])
    return bot, transports
