"""Texts we write to one customer: the status bot's answers, canned replies, resolution answers.

Templates live in `message_templates/replies/<locale>/<name>.j2` (plain text, one per answer);
a team adds or overrides canned replies in `[inbox] canned_dir` with the same layout. Every
template sees the live state of the incident the conversation is about — or `incident` None when
all is well — so "the current ETA" in a canned reply is always the current one:

    brand, status_url, customer_name, incident.{id,title,status,impact,url,components},
    eta, next_update (already phrased: "vers 15 h 30"), alternative, compensation, commands

and, with a `message` (the resolution's text), `message_thanks`: that text already thanks the customer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Final

import jinja2
from sqlalchemy import Connection
from sqlalchemy import select as sa_select
from sqlmodel.ext.asyncio.session import AsyncSession

import message_templates
from broadcaster.compose.lint import thanks_in
from broadcaster.compose.render import format_when, status_words
from broadcaster.config import Settings
from broadcaster.errors import ConfigurationError
from broadcaster.models import NOT_OPEN, Incident, IncidentUpdate

_incidents = Incident.__table__  # type: ignore[attr-defined]
_updates = IncidentUpdate.__table__  # type: ignore[attr-defined]

BUILT_IN = Path(message_templates.__file__).parent / "replies"
#: Answers the product itself sends; every other template of the folder is a canned reply.
BOT_TEMPLATES = frozenset(
    {"status_incident", "status_ok", "status_suspected", "subscribed", "unsubscribed", "not_subscribed",
     "language_set", "help", "start", "subscribe_elsewhere", "resolution", "unknown_component"}
)  # fmt: skip


class ReplyTemplateError(ConfigurationError, ValueError):
    """An unknown canned reply, or a template that does not render; names the file."""


@dataclass(frozen=True, slots=True)
class IncidentState:
    """What a customer is told about an incident: its latest published state."""

    id: int
    title: str
    status: str
    impact: str
    components: tuple[str, ...]
    latest_update_id: int
    eta_at: datetime | None
    next_update_at: datetime | None
    alternative: str  # in the brand's default locale
    compensation: str  # in the brand's default locale
    titles: Mapping[str, str] = field(default_factory=dict)  # the title in other locales
    alternatives: Mapping[str, str] = field(default_factory=dict)  # locale -> alternative
    compensations: Mapping[str, str] = field(default_factory=dict)  # locale -> compensation

    def title_in(self, locale: str) -> str:
        return self.titles.get(locale) or self.title


def incident_state_sync(connection: Connection, incident_id: int) -> IncidentState | None:
    """The incident's latest published state, in one statement (None: a draft, or no update yet)."""
    row = connection.execute(
        sa_select(
            _incidents.c.title, _incidents.c.status, _incidents.c.impact, _incidents.c.components,
            _incidents.c.workaround, _incidents.c.compensation, _incidents.c.title_translations,
            _incidents.c.compensation_translations, _updates.c.id.label("update_id"),
            _updates.c.eta_at, _updates.c.next_update_at,
        )
        .join(_updates, _updates.c.incident_id == _incidents.c.id)
        .where(_incidents.c.id == incident_id)
        .order_by(_updates.c.id.desc())
        .limit(1)
    ).first()  # fmt: skip
    if row is None or row.status == "draft":
        return None
    return IncidentState(
        id=incident_id,
        title=row.title,
        status=row.status,
        impact=row.impact,
        components=tuple(row.components),
        latest_update_id=row.update_id,
        eta_at=row.eta_at,
        next_update_at=row.next_update_at,
        alternative=next(iter((row.workaround or {}).values()), ""),
        compensation=row.compensation or "",
        titles=row.title_translations or {},
        alternatives=row.workaround or {},
        compensations=row.compensation_translations or {},
    )


def latest_open_incident(connection: Connection) -> int | None:
    """The id of the most recent incident still open, if any."""
    return connection.execute(
        sa_select(_incidents.c.id)
        .where(_incidents.c.status.not_in(NOT_OPEN))
        .order_by(_incidents.c.id.desc())
        .limit(1)
    ).scalar()


#: `current_incident_sync`'s `latest_open` when the caller has not read it.
UNREAD: Final = -1


def current_incident_sync(
    connection: Connection, linked_id: int | None, latest_open: int | None = UNREAD
) -> IncidentState | None:
    """The incident a customer asks about: theirs if still open, else the latest open one.

    `latest_open`: the latest open incident's id when the caller just read it (the inbox filer).
    """
    if linked_id is not None:
        status = connection.execute(
            sa_select(_incidents.c.status).where(_incidents.c.id == linked_id)
        ).scalar()
        if status is not None and status not in NOT_OPEN:
            return incident_state_sync(connection, linked_id)
    if latest_open == UNREAD:
        latest_open = latest_open_incident(connection)
    return incident_state_sync(connection, latest_open) if latest_open is not None else None


async def current_incident(session: AsyncSession, linked_id: int | None) -> IncidentState | None:
    """`current_incident_sync` in the session's transaction."""
    connection = await session.connection()
    return await connection.run_sync(current_incident_sync, linked_id)


class ReplyTemplates:
    """Renders reply templates for one deployment (built-in folder + the team's canned replies)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        folders = [Path(settings.inbox.canned_dir)] if settings.inbox.canned_dir else []
        self._env = jinja2.Environment(
            loader=jinja2.FileSystemLoader([*folders, BUILT_IN]),
            undefined=jinja2.StrictUndefined,
            autoescape=False,  # plain text; each channel escapes for its own format
            keep_trailing_newline=False,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        folders = [f for f in self._folders() if f.is_dir()]
        self._languages = frozenset(p.name for folder in folders for p in folder.iterdir() if p.is_dir())

    def canned_names(self, locale: str) -> list[str]:
        """The canned replies available in `locale` (bot answers excluded)."""
        names: set[str] = set()
        for loader_dir in self._folders():
            folder = loader_dir / self.language(locale)
            if folder.is_dir():
                names.update(p.stem for p in folder.glob("*.j2"))
        return sorted(names - BOT_TEMPLATES)

    def _folders(self) -> list[Path]:
        canned = self._settings.inbox.canned_dir
        return [Path(canned), BUILT_IN] if canned else [BUILT_IN]

    def language(self, locale: str) -> str:
        """The template folder for a reader's locale: theirs if we have it, else the brand's."""
        language = (locale or "").replace("_", "-").split("-")[0].lower()
        return language if language in self._languages else self._settings.brand.default_locale

    def render(
        self,
        name: str,
        locale: str,
        *,
        incident: IncidentState | None,
        now: datetime,
        customer_name: str = "",
        **extra: object,
    ) -> str:
        language = self.language(locale)
        path = f"{language}/{name}.j2"
        try:
            template = self._env.get_template(path)
        except jinja2.TemplateNotFound:
            available = ", ".join(self.canned_names(locale)) or "none"
            raise ReplyTemplateError(
                f"no reply template {name!r} in {language} (available: {available})"
            ) from None
        context = self._context(language, incident, now, customer_name) | extra
        context.setdefault("message_thanks", thanks_in(str(extra.get("message") or "")))
        try:
            text = template.render(context)
        except jinja2.TemplateError as exc:
            raise ReplyTemplateError(f"{path}: {exc}") from None
        return "\n".join(line.rstrip() for line in text.strip().splitlines())

    def _context(
        self, language: str, incident: IncidentState | None, now: datetime, customer_name: str
    ) -> dict[str, object]:
        settings = self._settings
        base = settings.server.public_base_url.rstrip("/")
        zone = settings.brand.timezone

        def when(dt: datetime | None, prep: str = "at") -> str:
            return format_when(dt, timezone=zone, locale=language, now=now, prep=prep) if dt else ""

        context: dict[str, object] = {
            "brand": settings.brand.name,
            "status_url": settings.status_url,
            "customer_name": customer_name,
            "incident": None,
            "eta": "",
            "next_update": "",
            "alternative": settings.brand.alternative.get(language, ""),
            "compensation": "",
            "still_affected": "",  # a resolution: the components something else open still affects
            "still_many": False,
        }
        if incident is not None:
            context |= {
                "incident": {
                    "id": incident.id,
                    "title": incident.title_in(language),
                    "status": status_words(incident.status, language),
                    "impact": incident.impact,
                    "url": f"{base}/incidents/{incident.id}",
                    "components": ", ".join(
                        settings.component_label(c, language) for c in incident.components
                    ),
                },
                "eta": when(incident.eta_at, "around"),
                "next_update": when(incident.next_update_at),
                "alternative": incident.alternatives.get(language)
                or incident.alternative
                or context["alternative"],
                "compensation": incident.compensations.get(language) or incident.compensation,
            }
        return context
