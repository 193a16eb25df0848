"""Spike detection: many customers asking "is it down?" while no incident is open drafts one.

More than `[inbox] spike_threshold` status questions or complaints received within
`spike_window_minutes`, no incident open and no draft made within `spike_cooldown_minutes`:
a draft incident (not public) is created with sample messages in its staff notes, and the
staff are alerted with the command that publishes it — both in one transaction. Once the
cooldown is over, a spike that goes on drafts again even if the first draft is still there (it
may have been missed); a discarded draft is deleted, so it no longer holds the cooldown.

The check is one COUNT (plus an EXISTS) when nothing happens, so the inbox can run it after
every filed batch. When it fires it re-checks under a lock, so two nodes, or the server and a
CLI command, never draft twice: `pg_advisory_xact_lock` on PostgreSQL; on SQLite a write that
changes nothing, which takes the database's single write lock (pysqlite only begins a
transaction at the first write, so reads alone would not serialise two callers).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Connection, Select, and_, exists, func, or_, select, text
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel.ext.asyncio.session import AsyncSession

from broadcaster.auth.audit import record
from broadcaster.config import Settings
from broadcaster.delivery.staff_alerts import queue_staff_alert
from broadcaster.models import NOT_OPEN, Conversation, Incident, Message
from channels.limits import truncate_at_word

__all__ = [
    "SPIKE_INTENTS",
    "SPIKE_LOCK_KEY",
    "Suspicion",
    "draft_if_spike",
    "outage_suspected_sync",
    "publish_command",
]

#: What customers write when something is down (the inbox's outage intents).
SPIKE_INTENTS = ("status_question", "complaint")
#: The advisory lock every node takes before drafting ("SPIKE" in ASCII).
SPIKE_LOCK_KEY = 0x5350494B45
SAMPLES = 10
SAMPLE_CHARS = 200

_messages = Message.__table__  # type: ignore[attr-defined]
_conversations = Conversation.__table__  # type: ignore[attr-defined]
_incidents = Incident.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class _Sample:
    at: datetime
    channel: str
    handle: str
    text: str


async def draft_if_spike(session: AsyncSession, settings: Settings, now: datetime) -> int | None:
    """Draft an incident and alert the staff if customers report a problem; return the draft's id.

    Runs its own transaction on `session`: committed when it drafts, rolled back otherwise.
    Called again right after, it drafts nothing (the cooldown holds).
    """
    connection = await session.connection()
    count = await _reports_if_unexplained(connection, settings, now)
    if count is None:
        await session.rollback()
        return None
    await _serialise(connection)
    count = await _reports_if_unexplained(connection, settings, now)  # another node may have drafted
    if count is None:
        await session.rollback()
        return None
    samples = await _samples(connection, settings, now)
    texts = _Texts.of(settings.brand.default_locale)
    window = f"{settings.inbox.spike_window_minutes:g}"
    incident = Incident(
        title=texts.title.format(count=count, window=window),
        status="draft",
        impact="major",
        components=[],
        notes=_notes(texts, settings, count, window, samples),
        created_at=now,
    )
    session.add(incident)
    await session.flush()
    assert incident.id is not None
    record(session, "incident.draft", f"incident:{incident.id}", f"spike: {count} reports in {window} min")
    subject = texts.subject.format(brand=settings.brand.name, count=count, window=window, id=incident.id)
    body = _alert_text(texts, settings, incident.id, count, window, samples)
    await queue_staff_alert(connection, settings, subject, body, now)
    await session.commit()
    return incident.id


async def _reports_if_unexplained(
    connection: AsyncConnection, settings: Settings, now: datetime
) -> int | None:
    """How many reports came in the window, when they are a spike nothing explains yet; else None."""
    inbox = settings.inbox
    reports = _reports_count(settings, now).scalar_subquery()
    explained = exists().where(
        or_(
            _incidents.c.status.not_in(NOT_OPEN),
            and_(
                _incidents.c.status == "draft",
                _incidents.c.created_at >= now - timedelta(minutes=inbox.spike_cooldown_minutes),
            ),
        )
    )
    count, is_explained = (await connection.execute(select(reports, explained))).one()
    return None if count <= inbox.spike_threshold or is_explained else int(count)


@dataclass(frozen=True, slots=True)
class Suspicion:
    """Customers report a problem that no open incident explains yet; `draft_id`: the spike's
    draft waiting for the staff, if there is one."""

    draft_id: int | None


def outage_suspected_sync(connection: Connection, settings: Settings, now: datetime) -> Suspicion | None:
    """With no incident open (the caller knows it: the status bot found none to answer about), is
    an outage suspected? Yes when a draft from reports is younger than the spike cooldown (the
    detector's own "explained" window), or more than half the spike threshold of reports came in
    the window. None otherwise (then nobody reports much)."""
    inbox = settings.inbox
    draft_id = connection.execute(
        select(_incidents.c.id)
        .where(
            _incidents.c.status == "draft",
            _incidents.c.created_at >= now - timedelta(minutes=inbox.spike_cooldown_minutes),
        )
        .order_by(_incidents.c.id.desc())
        .limit(1)
    ).scalar()
    if draft_id is not None:
        return Suspicion(draft_id)
    reports = connection.execute(_reports_count(settings, now)).scalar_one()
    return Suspicion(None) if reports > inbox.spike_threshold / 2 else None


def _reports_count(settings: Settings, now: datetime) -> Select[int]:
    """How many customer reports the window holds."""
    return select(func.count()).select_from(_messages).where(*_in_window(settings, now))


def _in_window(settings: Settings, now: datetime) -> list[ColumnElement[bool]]:
    """Customer reports of the window; (intent, created_at) is what an index should cover."""
    return [
        _messages.c.intent.in_(SPIKE_INTENTS),
        _messages.c.created_at >= now - timedelta(minutes=settings.inbox.spike_window_minutes),
        _messages.c.direction == "in",
    ]


async def _serialise(connection: AsyncConnection) -> None:
    """Hold a lock until the transaction ends, so spike checks that fire run one at a time."""
    if connection.dialect.name == "postgresql":
        await connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SPIKE_LOCK_KEY})
    else:
        await connection.execute(text("UPDATE incident SET id = id WHERE 0 = 1"))


async def _samples(connection: AsyncConnection, settings: Settings, now: datetime) -> list[_Sample]:
    """The latest reports of the window, oldest first."""
    statement = (
        select(
            _messages.c.created_at,
            _messages.c.channel,
            _conversations.c.customer_handle,
            _messages.c.text,
        )
        .join(_conversations, _conversations.c.id == _messages.c.conversation_id)
        .where(*_in_window(settings, now))
        .order_by(_messages.c.created_at.desc(), _messages.c.id.desc())
        .limit(SAMPLES)
    )
    rows = (await connection.execute(statement)).all()
    return [_Sample(r.created_at, r.channel, r.customer_handle, r.text) for r in reversed(rows)]


@dataclass(frozen=True, slots=True)
class _Texts:
    """Staff-facing wording in the brand's default locale (English for locales without one)."""

    title: str
    subject: str
    reports: str
    drafted: str
    samples: str
    publish: str
    discard: str

    @classmethod
    def of(cls, locale: str) -> _Texts:
        return _TEXTS.get(locale.replace("-", "_").split("_")[0].lower(), _TEXTS["en"])


_TEXTS = {
    "fr": _Texts(
        title="Signalements clients : {count} messages en {window} min",
        subject="[{brand}] {count} signalements clients en {window} min : incident #{id} en brouillon",
        reports=(
            "{count} messages de clients (questions sur l'état du service ou plaintes) en {window} min, "
            "sans incident ouvert."
        ),
        drafted="Un brouillon d'incident (#{id}) a été créé ; il n'est pas public.",
        samples="Derniers messages :",
        publish="Pour le publier sur tous les canaux (titre, composant parmi {components}, message) :",
        discard="Pour l'écarter :",
    ),
    "en": _Texts(
        title="Customer reports: {count} messages in {window} min",
        subject="[{brand}] {count} customer reports in {window} min: draft incident #{id}",
        reports=(
            "{count} customer messages (questions about the service or complaints) in {window} min, "
            "with no incident open."
        ),
        drafted="A draft incident (#{id}) was created; it is not public.",
        samples="Latest messages:",
        publish="To publish it on every channel (title, component among {components}, message):",
        discard="To discard it:",
    ),
}


def _sample_lines(settings: Settings, samples: Sequence[_Sample]) -> list[str]:
    zone = ZoneInfo(settings.brand.timezone)
    return [
        f"- {s.at.astimezone(zone):%H:%M:%S} · {s.channel} · {s.handle or '?'}: "
        + truncate_at_word(" ".join(s.text.split()), SAMPLE_CHARS)
        for s in samples
    ]


def _notes(texts: _Texts, settings: Settings, count: int, window: str, samples: Sequence[_Sample]) -> str:
    return "\n".join(
        [
            texts.reports.format(count=count, window=window),
            "",
            texts.samples,
            *_sample_lines(settings, samples),
        ]
    )


def publish_command(incident_id: int) -> str:
    """The command that publishes a draft, with what the staff must fill in."""
    return f'broadcaster incident publish {incident_id} --title "…" --component COMPONENT --message "…"'


def _alert_text(
    texts: _Texts, settings: Settings, incident_id: int, count: int, window: str, samples: Sequence[_Sample]
) -> str:
    return "\n".join(
        [
            texts.reports.format(count=count, window=window),
            texts.drafted.format(id=incident_id),
            "",
            texts.samples,
            *_sample_lines(settings, samples),
            "",
            texts.publish.format(components=", ".join(settings.components)),
            publish_command(incident_id),
            "",
            texts.discard,
            f"broadcaster incident discard {incident_id}",
        ]
    )
