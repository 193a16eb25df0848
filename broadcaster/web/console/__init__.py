"""The staff console under `/console`: server-rendered pages that work as plain forms, made live by a
few lines of our own JavaScript (`static/console.js`); every read and write goes through the same
functions as the CLI and the API."""

from __future__ import annotations

from fastapi import APIRouter

from broadcaster.config import Settings
from broadcaster.db import SessionFactory
from broadcaster.web.console.admin_pages import admin_pages_router
from broadcaster.web.console.composer import composer_router
from broadcaster.web.console.inbox_pages import inbox_pages_router
from broadcaster.web.console.incident_page import incident_page_router
from broadcaster.web.console.maintenance_pages import maintenance_pages_router
from broadcaster.web.console.overview import overview_router
from broadcaster.web.console.shell import Console, refusal_page
from broadcaster.web.staff_gate import StaffGate

__all__ = ["Console", "console_router", "refusal_page"]


def console_router(
    console: Console, settings: Settings, sessions: SessionFactory, gate: StaffGate
) -> APIRouter:
    router = APIRouter()
    router.include_router(overview_router(console, sessions, gate))
    router.include_router(composer_router(console, settings, sessions, gate))
    router.include_router(incident_page_router(console, settings, sessions, gate))
    router.include_router(inbox_pages_router(console, settings, sessions, gate))
    router.include_router(maintenance_pages_router(console, settings, sessions, gate))
    router.include_router(admin_pages_router(console, settings, sessions, gate))
    return router
