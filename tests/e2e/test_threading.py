"""Follow-ups continue the incident's story: each threading channel gets the previous update's id."""

from __future__ import annotations

from sqlmodel import col, select

from broadcaster.db import SessionFactory
from broadcaster.delivery.dispatch import Dispatcher
from broadcaster.delivery.runtimes import build_channels
from broadcaster.models import CapturedMessage
from tests.conftest import make_settings
from tests.e2e.helpers import draft, follow_up, open_, resolve


async def test_follow_ups_wait_for_and_reply_to_the_previous_update(
    database_url: str, sessions: SessionFactory
) -> None:
    settings = make_settings(database_url)  # every channel in capture mode
    opened = await open_(
        sessions,
        settings,
        draft(
            "investigating",
            "Le paiement échoue. Désolés, on enquête.",
            "Payment fails. Sorry, we are investigating.",
        ),
        force=True,
    )
    incident_id = opened.incident.id
    assert incident_id is not None
    # Two follow-ups are queued before anything was sent: they must go out after the first, in order.
    second = await follow_up(
        sessions,
        settings,
        incident_id,
        draft(
            "identified", "Cause trouvée, correctif en cours. Désolés.", "Cause found, fix under way. Sorry."
        ),
    )
    third = await resolve(
        sessions,
        settings,
        incident_id,
        draft(
            "resolved",
            "Tout fonctionne. Merci pour votre patience.",
            "All good. Thank you for your patience.",
        ),
    )
    runtimes = build_channels(settings, sessions)
    dispatcher = Dispatcher(sessions, runtimes, settings.dispatch, settings.server.public_base_url)
    update_ids = [opened.update.id, second.update.id, third.update.id]
    counts = await dispatcher.deliver([u for u in update_ids if u], timeout=60, retry_horizon=30)
    assert counts["twitter"] == {"captured": 3}  # capture mode: stored, never "sent"

    async with sessions() as session:
        captured = list(await session.exec(select(CapturedMessage).order_by(col(CapturedMessage.id))))
    for channel in ("twitter", "facebook", "blog"):
        story = [c for c in captured if c.channel == channel]
        keys = [f"{u}:{channel}:{story[0].target}" for u in update_ids]
        assert [c.idempotency_key for c in story] == keys  # sent in the order published
        assert [c.thread_ref for c in story] == ["", f"capture:{keys[0]}", f"capture:{keys[1]}"]
    # Channels that do not thread are not held back and carry no reference.
    assert all(c.thread_ref == "" for c in captured if c.channel in ("push", "email", "telegram"))
