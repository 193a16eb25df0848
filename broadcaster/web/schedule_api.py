"""`/api/v1/schedule`: what `broadcaster schedule` shows, for the staff dashboard (incidents:read)."""

from __future__ import annotations

from fastapi import APIRouter

from broadcaster.auth.roles import Permission
from broadcaster.config import Settings
from broadcaster.db import SessionFactory
from broadcaster.models import utcnow
from broadcaster.schedule.report import schedule_report
from broadcaster.web.staff_gate import StaffGate, needs


def schedule_router(settings: Settings, sessions: SessionFactory, gate: StaffGate) -> APIRouter:
    router = gate.router("/api/v1/schedule")

    @router.get("", **needs(Permission.INCIDENTS_READ))
    async def pending_and_missed() -> dict[str, list[dict[str, object]]]:
        """Pending jobs by time (`pending`) and the runs missed in the last 7 days (`missed`)."""
        return await schedule_report(sessions, settings, utcnow())

    return router
