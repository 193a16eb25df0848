"""`/docs`: Swagger UI served from an installed package (fastapi-offline's copy): no CDN, no inline script.

FastAPI's own page loads Swagger UI from a CDN and starts it with an inline script; this one
loads everything from this service, so it works offline and under a CSP without inline script.
"""

from __future__ import annotations

from html import escape
from pathlib import Path

import fastapi_offline
from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

__all__ = ["DOCS_HEADERS", "serve_docs"]

SWAGGER_UI_DIR = Path(fastapi_offline.__file__).parent / "static"

#: Swagger UI styles its elements inline and draws icons as data: images; scripts stay ours only.
DOCS_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    ),
}

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title} – API</title>
<link rel="stylesheet" href="/docs/assets/swagger-ui.css">
</head>
<body data-openapi="{openapi_url}">
<div id="swagger-ui"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script src="/static/docs.js"></script>
</body>
</html>
"""


def serve_docs(app: FastAPI) -> None:
    """Add `/docs` and its assets to `app` (built with `docs_url=None, redoc_url=None`)."""
    page = _PAGE.format(title=escape(app.title), openapi_url=escape(app.openapi_url or ""))
    app.mount("/docs/assets", StaticFiles(directory=SWAGGER_UI_DIR), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return HTMLResponse(page, headers=DOCS_HEADERS)
