"""`/console/incidents/new`: the composer. The message per locale side by side, ETA and next update on
the brand's clock (with quick choices), the alternative, the channels; previews of every channel as
the user types (our script calls `POST /api/v1/preview`) or on "Preview" without it; the linter's
findings inline; before publishing, the audience per channel to confirm. Publishing goes through
`open_incident`, as `broadcaster incident open` does."""

from __future__ import annotations

from dataclasses import dataclass, field

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.datastructures import FormData

from broadcaster.auth.roles import Permission
from broadcaster.compose.lint import has_errors
from broadcaster.compose.render import Composer
from broadcaster.config import Settings
from broadcaster.db import SessionFactory
from broadcaster.delivery.audience import audience_by_channel, readers_by_locale
from broadcaster.errors import BroadcasterError
from broadcaster.models import utcnow
from broadcaster.publishing.drafting import enabled_channels, fallbacks, preview
from broadcaster.publishing.incidents import (
    IMPACTS,
    INCIDENT_STATUSES,
    LintRefused,
    UpdateDraft,
    open_incident,
)
from broadcaster.publishing.preview_document import preview_dict
from broadcaster.timeparse import parse_future
from broadcaster.web.console.shell import N_, Console
from broadcaster.web.staff_gate import StaffGate, needs, principal_of

__all__ = ["composer_router"]

QUICK_MINUTES = (15, 30, 60)
#: The impacts in words, translated when shown.
assert set(IMPACTS) == {"none", "minor", "major", "critical"}
IMPACT_LABELS = {"none": N_("none"), "minor": N_("minor"), "major": N_("major"), "critical": N_("critical")}


@dataclass
class Composition:
    """What the form holds, read back as typed (so a refused form comes back as it was)."""

    title: str = ""
    titles: dict[str, str] = field(default_factory=dict)
    impact: str = "major"
    status: str = "investigating"
    components: list[str] = field(default_factory=list)
    messages: dict[str, str] = field(default_factory=dict)  # locale → text
    alternatives: dict[str, str] = field(default_factory=dict)
    eta: str = ""
    next_update: str = ""
    channels: list[str] = field(default_factory=list)
    force: bool = False
    force_reason: str = ""

    @classmethod
    def read(cls, form: FormData, settings: Settings) -> Composition:
        def text(name: str, limit: int = 10_000) -> str:
            value = form.get(name)
            return value.strip()[:limit] if isinstance(value, str) else ""

        locales = settings.brand.locales
        return cls(
            title=text("title", 200),
            titles={
                loc: text(f"title_{loc}", 200) for loc in locales if loc != settings.brand.default_locale
            },
            impact=text("impact", 16) or "major",
            status=text("status", 16) or "investigating",
            components=[c for c in form.getlist("components") if isinstance(c, str)][:50],
            messages={loc: text(f"message_{loc}") for loc in locales},
            alternatives={loc: text(f"alternative_{loc}", 2000) for loc in locales},
            eta=text("eta", 40),
            next_update=text("next_update", 40),
            channels=[c for c in form.getlist("channels") if isinstance(c, str)][:20],
            force=text("force", 8) == "on",
            force_reason=text("force_reason", 300),
        )

    def draft(self, settings: Settings, author: str) -> UpdateDraft:
        default = settings.brand.default_locale
        now, brand = utcnow(), settings.brand
        return UpdateDraft(
            status=self.status,
            message=self.messages.get(default, ""),
            translations={loc: t for loc, t in self.messages.items() if loc != default and t},
            eta_at=parse_future("eta", _when(self.eta), now=now, brand=brand) if self.eta else None,
            next_update_at=(
                parse_future("next update", _when(self.next_update), now=now, brand=brand)
                if self.next_update
                else None
            ),
            alternative=self.alternatives.get(default) or None,
            alternative_translations={loc: t for loc, t in self.alternatives.items() if loc != default and t},
            channels=tuple(self.channels),
            author=author,
            force_reason=self.force_reason,
        )


def _when(value: str) -> str:
    """A quick choice ("+30") is a duration; anything else a clock time or a date-time."""
    return f"{value[1:]}m" if value.startswith("+") and value[1:].isdigit() else value


def composer_router(
    console: Console, settings: Settings, sessions: SessionFactory, gate: StaffGate
) -> APIRouter:
    router = gate.router("/console/incidents")
    write = needs(Permission.INCIDENTS_WRITE)
    composer = Composer(settings.templates_dir or None, default_locale=settings.brand.default_locale)

    def page(
        request: Request, form: Composition, *, status_code: int = 200, **context: object
    ) -> HTMLResponse:
        return console.render(
            request, "composer.html.j2", status_code=status_code, form=form, impacts=IMPACT_LABELS,
            statuses=INCIDENT_STATUSES, components=list(settings.components),
            channels=enabled_channels(settings), quick=QUICK_MINUTES,
            default_locale=settings.brand.default_locale, locales=settings.brand.locales, now=utcnow(),
            **({"previews": None, "findings": [], "audience": None, "error": "", "refused": False} | context),
        )  # fmt: skip

    @router.get("/new", response_class=HTMLResponse, include_in_schema=False, **write)
    async def new(request: Request) -> HTMLResponse:
        return page(request, Composition(channels=enabled_channels(settings)))

    @router.post("/new", include_in_schema=False, **write)
    async def compose(request: Request) -> Response:
        submitted = await request.form()
        form = Composition.read(submitted, settings)
        step = submitted.get("step")
        author = principal_of(request).user.display_name
        try:
            draft = form.draft(settings, author)
            if step == "publish":
                async with sessions() as session:
                    published = await open_incident(
                        session, settings, composer, title=form.title, impact=form.impact,
                        components=form.components, draft=draft, title_translations=form.titles,
                        force=form.force,
                    )  # fmt: skip
                return RedirectResponse(
                    f"{console.base_url}/console/incidents/{published.incident.id}", status_code=303
                )
            shown = preview(
                settings, composer, title=form.title, impact=form.impact, components=form.components,
                draft=draft, title_translations=form.titles,
            )  # fmt: skip
        except LintRefused as exc:
            return page(request, form, status_code=422, findings=exc.findings, refused=True)
        except BroadcasterError as exc:
            return page(request, form, status_code=422, error=str(exc))
        async with sessions() as session:
            readers = await readers_by_locale(session, settings, list(shown.renders), form.components)
            audience = await audience_by_channel(session, settings, list(shown.renders), form.components)
        document = preview_dict(shown, fallbacks(shown.untranslated, readers))
        return page(
            request, form, previews=document, findings=shown.findings, audience=audience,
            refused=has_errors(shown.findings),
        )  # fmt: skip

    return router
