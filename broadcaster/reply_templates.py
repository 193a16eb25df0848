"""Texts we write to one customer: the status bot's answers, canned replies, resolution answers.

Templates live in `message_templates/replies/<locale>/<name>.j2` (plain text, one per answer);
a team adds or overrides canned replies in `[inbox] canned_dir` with the same layout. Every
template sees the live state of the incident the conversation is about — or `incident` None when
all is well — so "the current ETA" in a canned reply is always the current one:

    brand, status_url, customer_name, incident.{id,title,status,impact,url,components},
    eta, next_update (already phrased: "vers 15 h 30"), alternative, compensation, commands
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import jinja2
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

import message_templates
from broadcaster.compose import format_when, status_words
from broadcaster.config import Settings
from broadcaster.models import NOT_OPEN, Incident, IncidentUpdate

BUILT_IN = Path(message_templates.__file__).parent / "replies"
#: Answers the product itself sends; every other template of the folder is a canned reply.
BOT_TEMPLATES = frozenset(
    {"status_incident", "status_ok", "subscribed", "unsubscribed", "not_subscribed", "language_set",
     "help", "start", "subscribe_elsewhere", "resolution", "unknown_component"}
)  # fmt: skip


class ReplyTemplateError(ValueError):
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
    alternative: str
    compensation: str


async def incident_state(session: AsyncSession, incident_id: int) -> IncidentState | None:
    incident = await session.get(Incident, incident_id)
    if incident is None or incident.status == "draft":
        return None
    latest = (
        await session.exec(
            select(IncidentUpdate)
            .where(IncidentUpdate.incident_id == incident_id)
            .order_by(col(IncidentUpdate.id).desc())
            .limit(1)
        )
    ).first()
    if latest is None or latest.id is None:
        return None
    return IncidentState(
        id=incident_id,
        title=incident.title,
        status=incident.status,
        impact=incident.impact,
        components=tuple(incident.components),
        latest_update_id=latest.id,
        eta_at=latest.eta_at,
        next_update_at=latest.next_update_at,
        alternative=next(iter(incident.workaround.values()), ""),
        compensation=incident.compensation or "",
    )


async def current_incident(session: AsyncSession, linked_id: int | None) -> IncidentState | None:
    """The incident a customer asks about: theirs if still open, else the latest open one."""
    if linked_id is not None:
        incident = await session.get(Incident, linked_id)
        if incident is not None and incident.status not in NOT_OPEN:
            return await incident_state(session, linked_id)
    latest_open = (
        await session.exec(
            select(col(Incident.id))
            .where(col(Incident.status).not_in(NOT_OPEN))
            .order_by(col(Incident.id).desc())
            .limit(1)
        )
    ).first()
    return await incident_state(session, latest_open) if latest_open is not None else None


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
        try:
            text = template.render(self._context(language, incident, now, customer_name) | extra)
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
        }
        if incident is not None:
            context |= {
                "incident": {
                    "id": incident.id,
                    "title": incident.title,
                    "status": status_words(incident.status, language),
                    "impact": incident.impact,
                    "url": f"{base}/incidents/{incident.id}",
                    "components": ", ".join(
                        settings.component_label(c, language) for c in incident.components
                    ),
                },
                "eta": when(incident.eta_at, "around"),
                "next_update": when(incident.next_update_at),
                "alternative": incident.alternative or context["alternative"],
                "compensation": incident.compensation,
            }
        return context
