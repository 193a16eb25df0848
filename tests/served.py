"""An app served to an in-process client with its lifespan running, so what it opens is closed."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from starlette.types import ASGIApp


@asynccontextmanager
async def served(app: ASGIApp, base_url: str = "http://test") -> AsyncIterator[httpx.AsyncClient]:
    """A client of `app` while its lifespan runs (httpx's ASGITransport alone never starts or stops it,
    which left the app's engine and its pooled connections to the garbage collector)."""
    router = app.router
    async with (
        router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url) as client,
    ):
        yield client
