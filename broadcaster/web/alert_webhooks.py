"""`POST /webhooks/alerts/<source>`: monitors (Alertmanager, Grafana, Uptime Kuma, any JSON poster)
tell us first, before the customers do.

Each source configured in `[alerts.<source>]` has its own secret, checked before the body is read
as an alert: `X-Broadcaster-Signature: sha256=<hex HMAC-SHA256 of the body>`, or
`Authorization: Bearer <secret>` where the tool can only send a fixed header (Alertmanager's
`http_config.authorization`, Grafana's "Authorization header", Uptime Kuma's additional headers).
Wrong or missing → 403, nothing stored; an unconfigured source → 404; a body that is not the
source's shape → 400 naming the field. What the alerts do: `broadcaster.alerts.drafts`.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable

from fastapi import APIRouter, HTTPException, Request

from broadcaster.alerts.drafts import act_on_alerts
from broadcaster.alerts.payloads import read_alerts
from broadcaster.auth.audit import Actor, acting_as
from broadcaster.config import Settings
from broadcaster.db import SessionFactory
from broadcaster.models import utcnow
from broadcaster.web.json_body import check_json
from broadcaster.web.webhooks import read_body

__all__ = ["alert_router", "signature_of"]


def signature_of(body: bytes, secret: str) -> str:
    """The X-Broadcaster-Signature a sender computes: `sha256=` and the body's HMAC in hex."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _authentic(request: Request, body: bytes, secret: str) -> bool:
    signature = request.headers.get("x-broadcaster-signature", "")
    if signature and hmac.compare_digest(signature.encode(), signature_of(body, secret).encode()):
        return True
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), secret.encode())


def alert_router(
    settings: Settings, sessions: SessionFactory, on_alert: Callable[[], None] | None = None
) -> APIRouter:
    """The monitors' webhooks; `on_alert` learns that staff alerts were queued."""
    router = APIRouter(prefix="/webhooks/alerts")

    @router.post("/{source}")
    async def monitor_alert(source: str, request: Request) -> dict[str, object]:
        configured = settings.alerts.get(source)
        if configured is None:
            raise HTTPException(status_code=404, detail=f"no [alerts.{source[:40]}] in the configuration")
        body = await read_body(request)
        if not _authentic(request, body, configured.secret.get_secret_value()):
            raise HTTPException(
                status_code=403, detail="wrong or missing X-Broadcaster-Signature or Authorization: Bearer"
            )
        try:
            check_json(body)
            alerts = read_alerts(source, body)
        except ValueError as exc:
            raise HTTPException(status_code=400, detail=str(exc)) from None
        async with sessions() as session:
            with acting_as(Actor(f"monitor:{source}", request.client.host if request.client else "")):
                handled = await act_on_alerts(session, settings, source, alerts, utcnow())
        if (handled.drafted or handled.told) and on_alert is not None:
            on_alert()
        return {"alerts": len(alerts), **handled.as_dict()}

    return router
