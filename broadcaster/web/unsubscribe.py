"""`/unsubscribe/<token>`: the link in every e-mail, safe from link scanners, undoable.

Mail security scanners open every link of a message: a GET only asks (a page with one button, in
the subscriber's language); the POST unsubscribes. RFC 8058 one-click (`List-Unsubscribe-Post:
List-Unsubscribe=One-Click`, sent by mailbox providers with no page) is that same POST, answered
at once. The done page offers to subscribe again (the same subscription, active again). Whoever
holds a forwarded link sees the address masked ("c•••@example.com"), nothing else about them.

    GET  /unsubscribe/<token>              → "Stop receiving our notices at c•••@example.com?" [Unsubscribe]
    POST /unsubscribe/<token>              → unsubscribed (done page)
    POST /unsubscribe/<token>/resubscribe  → subscribed again
"""

from __future__ import annotations

import re

from fastapi import APIRouter
from fastapi.responses import HTMLResponse
from sqlalchemy import update
from sqlmodel import col, select

from broadcaster.config import Settings
from broadcaster.db import SessionFactory, writing
from broadcaster.delivery.outbox import withdrawal
from broadcaster.models import Subscriber, Subscription, utcnow
from broadcaster.web.pages import Pages
from broadcaster.web.words import page_words, speaks

__all__ = ["mask_address", "unsubscribe_router"]

#: What `secrets.token_urlsafe` makes (subscribers.py), within the column's 64 characters.
_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,64}")
#: The token is in the URL: no Referer to the status page, no cache, no search engine.
_PRIVATE = {"Referrer-Policy": "no-referrer", "Cache-Control": "no-store", "X-Robots-Tag": "noindex"}


def mask_address(channel: str, address: str) -> str:
    """An address as a page may show it to whoever holds the link: "c•••@example.com"; "" if not e-mail."""
    if channel != "email" or "@" not in address:
        return ""
    local, _, domain = address.rpartition("@")
    return f"{local[:1]}•••@{domain}"


def unsubscribe_router(settings: Settings, sessions: SessionFactory) -> APIRouter:
    """GET and POST /unsubscribe/<token>, POST /unsubscribe/<token>/resubscribe."""
    router = APIRouter()
    pages = Pages(settings)

    async def find(token: str) -> tuple[Subscription, str] | None:
        """The subscription of `token` and the language of its subscriber's pages."""
        if not _TOKEN.fullmatch(token):
            return None
        async with sessions() as session:
            row = (
                await session.exec(
                    select(Subscription, Subscriber)
                    .join(Subscriber, col(Subscriber.id) == col(Subscription.subscriber_id))
                    .where(Subscription.unsubscribe_token == token)
                )
            ).first()
        if row is None:
            return None
        subscription, subscriber = row
        locale = subscriber.locale if speaks(subscriber.locale) else settings.brand.default_locale
        return subscription, locale

    async def set_active(subscription: Subscription, active: bool) -> None:
        """Flip the subscription, once: a second POST keeps the first unsubscription's time."""
        values = (
            {"active": True, "deactivated_reason": "", "deactivated_at": None}
            if active
            else {"active": False, "deactivated_reason": "unsubscribed", "deactivated_at": utcnow()}
        )
        async with sessions() as session, writing(session):
            connection = await session.connection()
            await connection.execute(
                update(Subscription)
                .where(col(Subscription.id) == subscription.id, col(Subscription.active).is_(not active))
                .values(**values)
            )
            if not active:
                await connection.execute(withdrawal([subscription.id], "unsubscribed"))
            await session.commit()

    def page(token: str, subscription: Subscription, locale: str, state: str) -> HTMLResponse:
        words = page_words(locale)
        address = mask_address(subscription.channel, subscription.address)
        what = (
            words["what_email"].format(address=address)
            if address
            else words["what_other"].format(channel=subscription.channel.capitalize())
        )
        response = pages.render(
            "unsubscribe.html.j2", locale, state=state, what=what, token=token,
            unsubscribed_at=subscription.deactivated_at if state == "done" else None,
        )  # fmt: skip
        response.headers.update(_PRIVATE)
        return response

    def unknown() -> HTMLResponse:
        locale = settings.brand.default_locale
        words = page_words(locale)
        response = pages.render(
            "not_found.html.j2", locale, status_code=404,
            title=words["unknown_link"], text=words["unknown_link_text"],
        )  # fmt: skip
        response.headers.update(_PRIVATE)
        return response

    @router.post("/unsubscribe/{token}/resubscribe", response_class=HTMLResponse)
    async def resubscribe(token: str) -> HTMLResponse:
        """The done page's second button: the same subscription, active again.

        Declared first: `{token:path}` below would take ".../resubscribe" (any path under
        /unsubscribe/ is one of ours, so a mangled link gets the "unknown link" page too).
        """
        found = await find(token)
        if found is None:
            return unknown()
        subscription, locale = found
        if not subscription.active:
            await set_active(subscription, True)
        return page(token, subscription, locale, "resubscribed")

    @router.get("/unsubscribe/{token:path}", response_class=HTMLResponse)
    async def ask(token: str) -> HTMLResponse:
        """Only asks (link scanners fetch every link): one button, or "subscribe again" if already off."""
        found = await find(token)
        if found is None:
            return unknown()
        subscription, locale = found
        return page(token, subscription, locale, "confirm" if subscription.active else "done")

    @router.post("/unsubscribe/{token:path}", response_class=HTMLResponse)
    async def unsubscribe(token: str) -> HTMLResponse:
        """The button's POST and RFC 8058 one-click (`List-Unsubscribe=One-Click`): unsubscribed."""
        found = await find(token)
        if found is None:
            return unknown()
        subscription, locale = found
        if subscription.active:
            await set_active(subscription, False)
            subscription.deactivated_at = utcnow()
        return page(token, subscription, locale, "done")

    return router
