"""Alerts for the team (a spike of customer reports, a promised update not given), through the outbox.

An alert is one outbox row per configured staff address — the on-call e-mail address and the
staff Telegram chat — carrying its own rendered message, so it gets the retries and dead letters
of broadcasts. The rows are written in the caller's transaction: an alert goes out if and only
if what it announces was committed.
"""

from __future__ import annotations

import html
import logging
from datetime import datetime

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from broadcaster.config import Settings
from broadcaster.delivery.outbox import ALERT, new_delivery
from broadcaster.message import RenderedMessage
from broadcaster.models import Delivery
from channels.limits import fit_subject, split_text
from channels.registry import CAPABILITIES, SPECS

__all__ = ["STAFF_CHANNELS", "queue_staff_alert", "staff_messages"]

#: Where the staff can be alerted (`[staff]`): the channels to wake once an alert is queued.
STAFF_CHANNELS = tuple(name for name, spec in SPECS.items() if spec.staff_alerts)

log = logging.getLogger(__name__)

KIND = "alert"


def staff_messages(settings: Settings, subject: str, text: str) -> dict[tuple[str, str], RenderedMessage]:
    """{(channel, address): message} for every staff address whose channel is enabled.

    E-mail: `subject` is the one-line Subject, `text` the plain-text body. Telegram (HTML parse
    mode): the subject in bold, then the text, both escaped and split at 4096 characters.
    """
    if not subject.strip():
        raise ValueError("a staff alert needs a subject")
    staff, channels, locale = settings.staff, settings.channels, settings.brand.default_locale
    messages: dict[tuple[str, str], RenderedMessage] = {}
    if staff.email.strip():
        if channels.email.enabled:
            messages[("email", staff.email.strip())] = RenderedMessage(
                channel="email",
                locale=locale,
                kind=KIND,
                parts=(text,),
                title=fit_subject(subject, CAPABILITIES["email"].max_title),
            )
        else:
            log.warning("staff.email is set but the e-mail channel is disabled: no e-mail alert")
    if staff.telegram_chat_id.strip():
        if channels.telegram.enabled:
            body = f"<b>{html.escape(subject.strip(), quote=False)}</b>\n\n{html.escape(text, quote=False)}"
            messages[("telegram", staff.telegram_chat_id.strip())] = RenderedMessage(
                channel="telegram",
                locale=locale,
                kind=KIND,
                parts=tuple(split_text(body, CAPABILITIES["telegram"].max_body)),
            )
        else:
            log.warning("staff.telegram_chat_id is set but the Telegram channel is disabled: no alert there")
    return messages


async def queue_staff_alert(
    connection: AsyncConnection, settings: Settings, subject: str, text: str, now: datetime
) -> int:
    """Queue `subject` and `text` for every configured staff address; return the rows written.

    >>> await queue_staff_alert(connection, settings, "12 reports in 5 min", "Draft #7 …", utcnow())
    2
    """
    messages = staff_messages(settings, subject, text)
    if not messages:
        log.warning(
            "staff alert not sent, no staff address configured (set [staff] email or telegram_chat_id): %s",
            subject,
        )
        return 0
    rows = [
        new_delivery(
            kind=ALERT,
            channel=channel,
            target=address,
            locale=message.locale,
            now=now,
            payload=message.to_json(),
        )
        for (channel, address), message in messages.items()
    ]
    await connection.execute(insert(Delivery), rows)
    return len(rows)
