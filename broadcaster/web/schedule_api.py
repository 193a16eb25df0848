"""`/api/v1/schedule`: what `broadcaster schedule` shows, for the staff dashboard (bearer token)."""

from __future__ import annotations

from fastapi import APIRouter

from broadcaster.config import Settings
from broadcaster.db import SessionFactory
from broadcaster.models import utcnow
from broadcaster.schedule.report import schedule_report
from broadcaster.web.inbox_api import staff_router


def schedule_router(settings: Settings, sessions: SessionFactory) -> APIRouter:
    router = staff_router(settings, "/api/v1/schedule")

    @router.get("")
    async def pending_and_missed() -> dict[str, list[dict[str, object]]]:
        """Pending jobs by time (`pending`) and the runs missed in the last 7 days (`missed`)."""
        return await schedule_report(sessions, settings, utcnow())

    return router
