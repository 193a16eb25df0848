"""What any visitor can reach: security headers, redirects that ignore `Host`, /docs offline, the OpenAPI."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import AsyncIterator
from html.parser import HTMLParser

import httpx
import pytest

from broadcaster.web import create_app
from tests.conftest import make_settings
from tests.served import served

PUBLIC = "https://status.shop.example"
PAGES = ["/status", "/incidents/404", "/unsubscribe/no-such-token", "/maintenance", "/docs"]


@pytest.fixture
async def client(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(make_settings(database_url, server={"public_base_url": PUBLIC}), dispatch=False)
    async with served(app) as c:
        yield c


class Resources(HTMLParser):
    """What a page makes the browser load, and the inline scripts and styles it carries."""

    def __init__(self) -> None:
        super().__init__()
        self.loads: list[str] = []
        self.inline: list[str] = []
        self.styles: list[str] = []
        self._open: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "script" and found.get("src"):
            self.loads.append(found["src"] or "")
        elif tag == "link" and found.get("rel") == "stylesheet":
            self.loads.append(found.get("href") or "")
        elif tag in ("script", "style"):
            self._open = tag
        if "style" in found or any(name.startswith("on") for name in found):
            self.inline.append(f"<{tag}> attribute")

    def handle_data(self, data: str) -> None:
        if self._open == "style":
            self.styles.append(data)
        elif self._open and data.strip():
            self.inline.append(f"<{self._open}>{data[:40]}")

    def handle_endtag(self, tag: str) -> None:
        self._open = None


@pytest.mark.parametrize("path", ["/status/", "/feed.atom/", "/api/v1/status/", "/docs/"])
async def test_a_trailing_slash_redirect_goes_to_the_public_base_url_not_to_host(
    client: httpx.AsyncClient, path: str
) -> None:
    response = await client.get(path + "?x=1", headers={"Host": "evil.example"})
    assert response.status_code == 307
    assert response.headers["location"] == f"{PUBLIC}{path.rstrip('/')}?x=1"


async def test_an_unknown_path_is_still_a_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/nothing/here/", headers={"Host": "evil.example"})
    assert response.status_code == 404 and "location" not in response.headers


@pytest.mark.parametrize("path", [*PAGES, "/feed.atom", "/api/v1/status", "/healthz", "/openapi.json"])
async def test_every_response_carries_the_security_headers(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert response.headers["referrer-policy"] in ("same-origin", "no-referrer")


@pytest.mark.parametrize("path", PAGES)
async def test_pages_run_no_inline_script_and_load_only_our_own_files(
    client: httpx.AsyncClient, path: str
) -> None:
    response = await client.get(path)
    assert response.headers["content-type"].startswith("text/html")
    policy = response.headers["content-security-policy"]
    assert "'unsafe-inline'" not in policy.split("style-src")[0] and "unsafe-eval" not in policy
    assert "default-src 'none'" in policy
    resources = Resources()
    resources.feed(response.text)
    assert path == "/docs" or resources.inline == []  # Swagger UI itself styles its elements inline
    assert [i for i in resources.inline if i.startswith("<script")] == []
    for style in resources.styles:  # an inline <style> only with its hash in the policy
        assert f"'sha256-{base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()}'" in policy
    for url in resources.loads:
        assert url.startswith(("/", f"{PUBLIC}/")), url  # nothing from a CDN or any other host
        asset = await client.get(url.removeprefix(PUBLIC))
        assert asset.status_code == 200 and asset.content, url


async def test_the_openapi_declares_the_staff_bearer_scheme(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    assert spec["components"]["securitySchemes"]["staffToken"]["type"] == "http"
    assert spec["components"]["securitySchemes"]["staffToken"]["scheme"] == "bearer"
    staff = {path: ops for path, ops in spec["paths"].items() if path.startswith("/api/v1/inbox")}
    assert staff and all(
        op["security"] == [{"staffToken": []}] for ops in staff.values() for op in ops.values()
    )
    assert "security" not in spec["paths"]["/api/v1/status"]["get"]
