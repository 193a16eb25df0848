"""Errors of the staff API as RFC 9457 problem details (`application/problem+json`), naming the field.

    {"type": "about:blank", "title": "Unprocessable Content", "status": 422,
     "detail": "body.author: String should have at least 1 character", "instance": "/api/v1/inbox/4/reply",
     "errors": [{"field": "body.author", "loc": ["body", "author"], "message": "String should …"}]}

Pages and webhooks keep FastAPI's own error answers; only `/api/` speaks problem+json.
"""

from __future__ import annotations

from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler, request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

__all__ = ["PROBLEM_JSON", "install_problem_details", "problem"]

PROBLEM_JSON = "application/problem+json"
_API = "/api/"


def problem(
    status: int,
    detail: str,
    instance: str,
    *,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "instance": instance,
    }
    if errors:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _field(loc: Any) -> str:
    return ".".join(str(part) for part in loc)


PageRefusal = Callable[[Request, StarletteHTTPException], Response]


def install_problem_details(app: FastAPI, pages: tuple[str, PageRefusal] | None = None) -> None:
    """Makes every error under `/api/` a problem document; under `pages`' prefix (the console) its
    function answers (a page, a redirect to sign in); elsewhere FastAPI's answers stay."""

    async def on_http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if pages is not None and request.url.path.startswith(pages[0]):
            return pages[1](request, exc)
        if not request.url.path.startswith(_API):
            return await http_exception_handler(request, exc)
        detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
        return problem(exc.status_code, detail, request.url.path, headers=dict(exc.headers or {}))

    async def on_invalid_request(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        if not request.url.path.startswith(_API):
            return await request_validation_exception_handler(request, exc)
        errors = [
            {
                "field": _field(e.get("loc", ())),
                "loc": list(e.get("loc", ())),
                "message": str(e.get("msg", "")),
            }
            for e in exc.errors()
        ]
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors) or "the request is malformed"
        return problem(422, detail, request.url.path, errors=errors)

    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(RequestValidationError, on_invalid_request)
