"""FastAPI application for `broadcaster serve`; the dispatch workers run in its lifespan."""

from __future__ import annotations

import functools
import gc
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from sqlmodel import col, select

from broadcaster.auth.roles import Permission
from broadcaster.compose.render import Composer
from broadcaster.config import Settings
from broadcaster.db import SessionFactory, create_engine, session_factory
from broadcaster.delivery.dispatch import Dispatcher
from broadcaster.delivery.runtimes import build_channels
from broadcaster.delivery.staff_alerts import STAFF_CHANNELS
from broadcaster.inbox.filer import InboxFiling
from broadcaster.inbox.inbound import reply_address_exists, store_inbound
from broadcaster.inbox.pollers import build_pollers
from broadcaster.inbox.postmaster import forward_to_staff
from broadcaster.loop_health import LoopHealth
from broadcaster.metrics import CONTENT_TYPE, Metrics
from broadcaster.models import NOT_OPEN, Component, Incident
from broadcaster.schedule.runner import SchedulerThread
from broadcaster.web.alert_webhooks import alert_router
from broadcaster.web.api_docs import serve_docs
from broadcaster.web.console import Console, console_router, refusal_page
from broadcaster.web.deliveries_api import deliveries_router
from broadcaster.web.events_api import events_router
from broadcaster.web.feed import feed_router
from broadcaster.web.inbox_api import inbox_router
from broadcaster.web.incidents_api import incidents_router
from broadcaster.web.maintenance import maintenance_router
from broadcaster.web.maintenance_api import maintenance_api_router
from broadcaster.web.pages import STATIC_DIR
from broadcaster.web.problems import install_problem_details
from broadcaster.web.public import public_router
from broadcaster.web.schedule_api import schedule_router
from broadcaster.web.staff_api import staff_api_router
from broadcaster.web.staff_gate import StaffGate, needs
from broadcaster.web.staff_pages import staff_pages_router
from broadcaster.web.subscribers_api import subscribers_router
from broadcaster.web.surface import SecurityHeaders, redirect_slashes_to
from broadcaster.web.unsubscribe import unsubscribe_router
from broadcaster.web.webhooks import webhook_router
from channels.base import InboundMessage
from channels.email.inbound import InboundSmtpServer, ReplyAddress


def inbound_email_listener(
    settings: Settings,
    sessions: SessionFactory,
    on_stored: Callable[[], None] | None = None,
    on_alert: Callable[[], None] | None = None,
) -> InboundSmtpServer | None:
    """Replies to our e-mails, received on our own SMTP listener (never an open relay); mail for
    postmaster goes to the staff e-mail (`on_alert` learns it is queued)."""
    email = settings.channels.email
    if not (email.enabled and email.inbound_enabled):
        return None

    async def store(message: InboundMessage) -> None:
        if await store_inbound(sessions, [message]) and on_stored is not None:
            on_stored()

    async def known(address: ReplyAddress) -> bool:
        return await reply_address_exists(sessions, address)

    async def to_staff(raw: bytes, mail_from: str) -> None:
        if await forward_to_staff(sessions, settings, raw, mail_from) and on_alert is not None:
            on_alert()

    return InboundSmtpServer(
        email.inbound_host, email.inbound_port, email.reply_domain, store,
        max_bytes=email.inbound_max_bytes, known_address=known,
        idle_timeout=email.inbound_idle_timeout_seconds,
        sessions_per_client=email.inbound_sessions_per_client,
        on_postmaster=to_staff if settings.staff.email.strip() else None,
        authserv_id=email.inbound_authserv_id,
    )  # fmt: skip


def metrics_router(gate: StaffGate, sessions: SessionFactory, metrics: Metrics) -> APIRouter:
    """`GET /metrics` for Prometheus, with a token that may read incidents: queue sizes are not public."""
    router = gate.router()

    @router.get("/metrics", response_class=Response, **needs(Permission.INCIDENTS_READ))
    async def scrape() -> Response:
        return Response(await metrics.scrape(sessions), media_type=CONTENT_TYPE)

    return router


def create_app(settings: Settings, *, dispatch: bool = True, telegram_polling: bool = False) -> FastAPI:
    """The service app; with `dispatch` the outbox workers, the inbox and its pollers run while it serves.

    `telegram_polling`: pull Telegram messages with getUpdates (no public URL for the webhook).
    """
    engine = create_engine(settings.database.url)
    sessions = session_factory(engine)
    runtimes = build_channels(settings, sessions) if dispatch else {}
    health = LoopHealth(sessions)  # this process's dispatch loops and pollers, for /healthz
    metrics = Metrics()  # this app's own registry: several apps in one process (tests) never mix counts
    dispatcher = Dispatcher(
        sessions, runtimes, settings.dispatch, settings.server.public_base_url, health, metrics
    )

    filer = InboxFiling(settings, sessions, dispatcher)  # the inbox filer, its bot, the spike detector

    def staff_alerted() -> None:
        for channel in STAFF_CHANNELS:
            dispatcher.wake(channel)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        """Each part starts in order and stops in reverse, even when one of them fails: the
        dispatcher (and its channels) last, so the filer's and the scheduler's answers still go."""
        async with AsyncExitStack() as parts:
            parts.push_async_callback(engine.dispose)
            await parts.enter_async_context(dispatcher)  # closes its channels
            if dispatch:
                await parts.enter_async_context(dispatcher.running())
                composer = Composer(
                    settings.templates_dir or None, default_locale=settings.brand.default_locale
                )
                await parts.enter_async_context(SchedulerThread(settings, composer, dispatcher.wake))
                await parts.enter_async_context(filer)
                listener = inbound_email_listener(settings, sessions, filer.nudge, staff_alerted)
                if listener is not None:
                    await parts.enter_async_context(listener)
                pulled = build_pollers(
                    settings, sessions, runtimes, telegram_polling=telegram_polling, on_stored=filer.nudge
                )
                await parts.enter_async_context(pulled.running(health))
            # Everything built so far lives as long as the server: out of the collector's sight, a full
            # collection no longer walks it (it stalled every request for ~150 ms, the status bot's p99).
            gc.collect()
            gc.freeze()
            parts.callback(gc.unfreeze)  # collectable again once the app stops (tests run many apps)
            yield

    app = FastAPI(
        title="crisis-broadcaster", version="0.1.0", lifespan=lifespan,
        docs_url=None, redoc_url=None, redirect_slashes=False,
    )  # fmt: skip
    app.add_middleware(SecurityHeaders, public_base_url=settings.server.public_base_url)
    redirect_slashes_to(app.router, settings.server.public_base_url)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    serve_docs(app)

    @app.get("/healthz", response_model=None)
    async def healthz() -> dict[str, Any] | JSONResponse:
        """200 `{"status": "ok"}`; 503 naming this process's loops that are down (restarting)."""
        async with sessions() as session:
            await session.exec(select(Component.id).limit(1))
        down = health.down()
        if down:
            return JSONResponse({"status": "degraded", "loops_down": sorted(down)}, status_code=503)
        return {"status": "ok"}

    @app.get("/api/v1/status")
    async def status() -> dict[str, Any]:
        """Components, open incidents and maintenance (running or planned), for widgets and the bot.

        `status`: "incident" while an incident is open, else "maintenance" while one runs, else
        "degraded" if a component is not operational, else "operational".
        """
        async with sessions() as session:
            components = list(await session.exec(select(Component).order_by(col(Component.id))))
            current = list(
                await session.exec(
                    select(Incident)
                    .where(col(Incident.status).not_in(NOT_OPEN) | (col(Incident.status) == "scheduled"))
                    .order_by(col(Incident.id))
                )
            )
        incidents = [i for i in current if i.kind == "incident"]
        maintenances = [i for i in current if i.kind == "maintenance"]
        if incidents:
            overall = "incident"
        elif any(m.status != "scheduled" for m in maintenances):
            overall = "maintenance"
        else:
            overall = "operational" if all(c.status == "operational" for c in components) else "degraded"
        return {
            "brand": settings.brand.name,
            "status": overall,
            "components": [
                {
                    "name": c.name,
                    "label": c.description,
                    "status": c.status,
                    "updated_at": c.updated_at.isoformat(),
                }
                for c in components
            ],
            "incidents": [
                {
                    "id": i.id,
                    "title": i.title,
                    "title_translations": i.title_translations,
                    "status": i.status,
                    "impact": i.impact,
                    "components": i.components,
                    "created_at": i.created_at.isoformat(),
                    "next_update_at": i.next_update_at.isoformat() if i.next_update_at else None,
                }
                for i in incidents
            ],
            "maintenances": [
                {
                    "id": m.id,
                    "title": m.title,
                    "title_translations": m.title_translations,
                    "status": m.status,
                    "components": m.components,
                    "starts_at": m.scheduled_start_at.isoformat() if m.scheduled_start_at else None,
                    "ends_at": m.scheduled_end_at.isoformat() if m.scheduled_end_at else None,
                }
                for m in maintenances
            ],
        }

    app.include_router(public_router(settings, sessions))
    app.include_router(feed_router(settings, sessions))
    app.include_router(unsubscribe_router(settings, sessions))
    app.include_router(maintenance_router(settings, sessions))
    app.include_router(webhook_router(settings, sessions, filer.nudge if dispatch else None))

    app.include_router(alert_router(settings, sessions, staff_alerted if dispatch else None))
    gate = StaffGate(settings, sessions)
    console = Console(settings)
    install_problem_details(app, pages=("/console", functools.partial(refusal_page, console)))
    app.include_router(console_router(console, settings, sessions, gate))
    app.include_router(staff_pages_router(settings, sessions, gate))
    app.include_router(schedule_router(settings, sessions, gate))
    app.include_router(inbox_router(settings, sessions, gate, dispatcher.wake if dispatch else None))
    app.include_router(staff_api_router(settings, sessions, gate))
    app.include_router(incidents_router(settings, sessions, gate, dispatcher.wake if dispatch else None))
    app.include_router(
        maintenance_api_router(settings, sessions, gate, dispatcher.wake if dispatch else None)
    )
    app.include_router(deliveries_router(settings, sessions, gate, dispatcher.wake if dispatch else None))
    app.include_router(subscribers_router(settings, sessions, gate))
    app.include_router(events_router(sessions, gate))
    if settings.server.metrics:
        app.include_router(metrics_router(gate, sessions, metrics))
    return app
