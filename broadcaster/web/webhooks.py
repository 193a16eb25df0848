"""Webhooks from the providers: check who is calling, parse, store, acknowledge fast.

A wrong or missing signature gets 403 and nothing is stored; a malformed payload 400 naming the
field (also JSON nested too deep, an integer past 64 bits, NaN: `json_body`); a body over 1 MiB
413. Parsed messages are stored once per (channel, external_id) — a webhook delivered twice
stores one message — for the inbox to work them.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import PlainTextResponse

from broadcaster.config import Settings
from broadcaster.db import SessionFactory
from broadcaster.inbox.inbound import GroupCommit
from broadcaster.web.json_body import check_json
from channels.facebook.webhook import parse_events, signature_is_valid, verify_subscription
from channels.telegram.adapter import TelegramChannel

MAX_BODY = 1024 * 1024


async def read_body(request: Request) -> bytes:
    """The raw body, refusing more than 1 MiB before reading it all."""
    declared = request.headers.get("content-length")
    if declared and declared.isascii() and declared.isdigit() and int(declared) > MAX_BODY:
        raise HTTPException(status_code=413, detail="payload larger than 1 MiB")
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > MAX_BODY:
            raise HTTPException(status_code=413, detail="payload larger than 1 MiB")
    return bytes(body)


def webhook_router(
    settings: Settings, sessions: SessionFactory, on_stored: Callable[[], None] | None = None
) -> APIRouter:
    router = APIRouter(prefix="/webhooks")
    writer = GroupCommit(sessions, on_stored)
    telegram = TelegramChannel(settings.channels.telegram)

    @router.post("/telegram")
    async def telegram_webhook(request: Request) -> dict[str, int]:
        """Telegram updates (setWebhook with secret_token = channels.telegram.webhook_secret)."""
        secret = settings.channels.telegram.webhook_secret
        given = request.headers.get("x-telegram-bot-api-secret-token", "")
        if secret is None or not hmac.compare_digest(given.encode(), secret.get_secret_value().encode()):
            raise HTTPException(status_code=403, detail="wrong or missing X-Telegram-Bot-Api-Secret-Token")
        body = await read_body(request)
        try:
            check_json(body)
            messages = telegram.parse_inbound(body, dict(request.headers))
        except ValueError as exc:
            raise HTTPException(status_code=400, detail=str(exc)) from None
        return {"received": len(messages), "stored": await writer.store(messages)}

    @router.get("/facebook")
    async def facebook_verification(request: Request) -> PlainTextResponse:
        """Meta's subscription handshake: echo `hub.challenge` when the verify token matches."""
        token = settings.channels.facebook.verify_token
        challenge = verify_subscription(request.query_params, token.get_secret_value()) if token else None
        if challenge is None:
            raise HTTPException(status_code=403, detail="wrong hub.verify_token or hub.mode")
        return PlainTextResponse(challenge)

    @router.post("/facebook")
    async def facebook_webhook(request: Request) -> dict[str, int]:
        """Page comments and Messenger messages, signed with X-Hub-Signature-256 (the app secret)."""
        secret = settings.channels.facebook.app_secret
        body = await read_body(request)
        header = request.headers.get("x-hub-signature-256")
        if secret is None or not signature_is_valid(body, header, secret.get_secret_value()):
            raise HTTPException(status_code=403, detail="wrong or missing X-Hub-Signature-256")
        try:
            check_json(body)
            messages = parse_events(body, page_id=settings.channels.facebook.page_id)
        except ValueError as exc:
            raise HTTPException(status_code=400, detail=str(exc)) from None
        return {"received": len(messages), "stored": await writer.store(messages)}

    return router
