"""Real-browser tests: Playwright driving Debian's Chromium (`/usr/bin/chromium`, installed by `.ci/run`).

Without Chromium they are skipped on a laptop, with the reason; in CI (`CI=true`) that is a failure.
Screenshots of every page go to `test-artefacts/screenshots/` (not committed) to be looked at.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.async_api import Browser, Page, Route, async_playwright

from broadcaster.config import Settings
from broadcaster.web import create_app
from broadcaster.web.serving import serving_config
from tests.peers.http_server import ServerThread

CHROMIUM = os.environ.get("BROADCASTER_TEST_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artefacts" / "screenshots"
VIEWPORTS = {"desktop": {"width": 1280, "height": 800}, "phone": {"width": 375, "height": 812}}


@pytest.fixture
def database_url(sqlite_url: str) -> str:
    """The pages, not the database, are under test here: SQLite only (the API's tests cover both)."""
    return sqlite_url


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if not Path(CHROMIUM).exists() and not shutil.which(CHROMIUM):
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI needs Chromium at {CHROMIUM} (apt-get install -y chromium)")
        pytest.skip(f"no Chromium at {CHROMIUM}: apt-get install -y chromium to run the browser tests")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield launched
        finally:
            await launched.close()


class Outside:
    """Every request a page makes that is not for 127.0.0.1 (refused, and written down)."""

    def __init__(self) -> None:
        self.requests: list[str] = []

    async def guard(self, route: Route) -> None:
        host = urlsplit(route.request.url).hostname
        if route.request.url.startswith(("data:", "blob:")) or host == "127.0.0.1":
            await route.continue_()
        else:
            self.requests.append(route.request.url)
            await route.abort()


async def new_page(browser: Browser, viewport: str, outside: Outside, locale: str = "fr-FR") -> Page:
    context = await browser.new_context(viewport=VIEWPORTS[viewport], locale=locale)  # type: ignore[arg-type]
    await context.route("**/*", outside.guard)
    return await context.new_page()


async def shot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


from tests.e2e.conftest import smtp, telegram  # noqa: E402,F401  (the peers, for pages that send)


@pytest.fixture
def port(free_port: Callable[[], int]) -> int:
    """The server's port, known before its settings: `public_base_url` must name it."""
    return free_port()


@contextmanager
def serving(settings: Settings, port: int, *, dispatch: bool) -> Iterator[ServerThread]:
    """`broadcaster serve`'s app under uvicorn on `port` (with `dispatch`, it sends what is published)."""
    app = create_app(settings, dispatch=dispatch)
    thread = ServerThread(
        app, "broadcaster", config=serving_config(app, settings, "127.0.0.1", port), port=port
    )
    thread.start()
    try:
        yield thread
    finally:
        thread.stop()
