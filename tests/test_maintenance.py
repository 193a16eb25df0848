"""Maintenance windows: notices for every channel × locale × phase, and the window's life cycle."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import col, select

from broadcaster.compose.lint import Draft, lint
from broadcaster.compose.render import Composer
from broadcaster.config import Settings
from broadcaster.db import SessionFactory
from broadcaster.delivery.subscribers import NewSubscriber
from broadcaster.message import Brand, MessageContext, RenderedMessage
from broadcaster.models import Component, Delivery, Incident, IncidentUpdate, Rendition, ScheduledRun
from broadcaster.publishing.drafting import LintRefused, PublishError
from broadcaster.publishing.incidents import Published
from broadcaster.publishing.maintenance import (
    PHASES,
    MaintenanceError,
    Unannounced,
    cancel_maintenance,
    complete_maintenance,
    complete_maintenance_now,
    post_notice,
    reschedule_maintenance,
    schedule_maintenance,
    start_maintenance,
)
from channels.limits import x_weighted_length
from channels.registry import CAPABILITIES, CHANNEL_NAMES
from tests.conftest import make_settings
from tests.e2e.helpers import subscribe

NOW = datetime(2026, 11, 22, 9, 0, tzinfo=UTC)
START = datetime(2026, 11, 25, 1, 0, tzinfo=UTC)  # 02:00 in Paris
END = START + timedelta(hours=2, minutes=30)
TEXT = {
    "fr": "Nous mettons à jour notre système de paiement pour le rendre plus rapide.",
    "en": "We are upgrading our payment system to make it faster.",
}
CHANNELS = ("twitter", "facebook", "telegram", "email", "push", "blog")


def nbsp(text: str) -> str:
    """A clock or a duration as messages write it: no-break spaces inside ("4 h 30")."""
    return text.replace(" ", "\u00a0")


def _context(locale: str, phase: str) -> MessageContext:
    return MessageContext(
        brand=Brand("Maison & Fils", "https://shop.example", "https://shop.example/status"),
        locale=locale,
        kind="maintenance_notice",
        incident_id=7,
        title="Mise à jour <paiement>",
        impact="none",
        status="scheduled",
        message=TEXT[locale] * 3,  # long enough to make X split and push truncate
        published_at=NOW,
        components=("Commande", "Paiement"),
        alternative="Commandes par téléphone au 01 23 45 67 89",
        incident_url="https://status.example/incidents/7",
        phase=phase,
        starts_at=START,
        ends_at=END,
        previous_starts_at=START - timedelta(days=1),
        previous_ends_at=END - timedelta(hours=1),
        duration=nbsp("2 h 30"),
    )


@pytest.mark.parametrize("locale", ["fr", "en"])
@pytest.mark.parametrize("phase", PHASES)
def test_every_channel_renders_every_phase_within_its_limits(locale: str, phase: str) -> None:
    rendered = Composer(default_locale="fr").render_all(_context(locale, phase))
    assert set(rendered) == set(CHANNEL_NAMES)
    end_clock = nbsp("4 h 30" if locale == "fr" else "4:30 AM")
    start_clock = nbsp("2 h 00" if locale == "fr" else "2:00 AM")
    for channel, message in rendered.items():
        caps = CAPABILITIES[channel]
        everything = message.title + "\n" + message.text + "\n" + message.html
        assert "None" not in everything and "{{" not in everything
        if channel == "twitter":
            assert all(x_weighted_length(part) <= caps.max_body for part in message.parts)
        elif caps.max_body:
            assert all(len(part) <= caps.max_body for part in message.parts)
        if caps.max_title:
            assert len(message.title) <= caps.max_title
        # A notice always says when: the start (announced, moved, cancelled) or the end (running).
        if phase in ("notice", "rescheduled", "cancelled"):
            assert start_clock in message.text, (channel, message.text)
        if phase in ("started", "extended", "shortened") or (phase == "notice" and channel != "push"):
            assert end_clock in message.text, (channel, message.text)
        if phase == "notice":
            assert nbsp("2 h 30") in message.text  # how long
    telegram = rendered["telegram"].text
    assert "&lt;paiement&gt;" in telegram and "<paiement>" not in telegram
    assert "Maison &amp; Fils" in rendered["email"].html and "&lt;paiement&gt;" in rendered["email"].html


def test_the_notice_words_follow_the_phase() -> None:
    composer = Composer(default_locale="fr")
    notice = composer.render("twitter", _context("fr", "notice")).parts[0]
    assert notice.startswith(
        f"🛠 Une maintenance est prévue le 25 nov. à {nbsp('2 h 00')}, pour {nbsp('2 h 30')} environ"
    )
    moved = composer.render("email", _context("en", "rescheduled")).text
    assert (
        f"originally planned on Nov 24 at {nbsp('2:00 AM')} will now take place on Nov 25 at "
        f"{nbsp('2:00 AM')}" in moved
    )
    extended = composer.render("push", _context("fr", "extended"))
    assert extended.title == "Maison & Fils · Maintenance prolongée"
    assert f"fin désormais prévue le 25 nov. à {nbsp('4 h 30')}" in extended.text
    done = composer.render("facebook", _context("en", "completed")).text
    assert "Commande and Paiement are working normally again. Thank you for your patience!" in done


def test_linter_spares_maintenance_the_outage_rules_but_wants_the_when() -> None:
    plain = {"fr": TEXT["fr"]}
    findings = lint(Draft(kind="maintenance_notice", messages=plain, is_first_update=True, has_schedule=True))
    assert {f.rule for f in findings} == set()
    missing = lint(Draft(kind="maintenance_notice", messages=plain, phase="notice"))
    assert [f.rule for f in missing] == ["no-when"] and missing[0].severity == "error"
    # The outage's first update still asks for an apology.
    assert "no-apology" in {f.rule for f in lint(Draft(kind="update", messages=plain, is_first_update=True))}


async def _schedule(sessions: SessionFactory, settings: Settings, **overrides: object) -> Incident:
    args: dict[str, object] = {
        "title": "Mise à jour du paiement",
        "starts_at": START,
        "ends_at": END,
        "components": ["checkout", "payment"],
        "message": TEXT,
        "author": "cm",
        "now": NOW,
    } | overrides
    async with sessions() as session:
        return await schedule_maintenance(session, settings, **args)  # type: ignore[arg-type]


async def _statuses(sessions: SessionFactory) -> dict[str, str]:
    async with sessions() as session:
        return {c.name: c.status for c in await session.exec(select(Component))}


async def _incident(sessions: SessionFactory, incident_id: int) -> Incident:
    async with sessions() as session:
        incident = await session.get(Incident, incident_id)
        assert incident is not None
        return incident


async def test_schedule_notice_start_complete(database_url: str, sessions: SessionFactory) -> None:
    settings = make_settings(database_url)
    await subscribe(
        sessions,
        settings,
        [
            NewSubscriber(email="fr@example.com", locale="fr", line=2),
            NewSubscriber(email="en@example.com", locale="en", components=("checkout",), line=3),
            NewSubscriber(email="app@example.com", components=("mobile-app",), line=4),  # not concerned
        ],
    )
    incident = await _schedule(sessions, settings)
    assert incident.id is not None and incident.status == "scheduled" and incident.kind == "maintenance"
    async with sessions() as session:
        assert len(list(await session.exec(select(Delivery)))) == 0  # scheduling sends nothing

        # The 72 h rung: e-mail only, to the subscribers of the affected components, atomically
        # with the run key the scheduler adds beforehand.
        session.add(ScheduledRun(key=f"notice:{incident.id}:72", kind="notice", outcome="done"))
        published = await post_notice(
            session, settings, incident.id, phase="notice", channels=["email"], now=NOW
        )
        assert published is not None and published.deliveries == {"email": 2}
        assert await session.get(ScheduledRun, f"notice:{incident.id}:72") is not None
        assert await post_notice(session, settings, incident.id, phase="notice", channels=[], now=NOW) is None
    assert set((await _statuses(sessions)).values()) == {"operational"}

    async with sessions() as session:
        started = await start_maintenance(session, settings, incident.id, START)
    assert started is not None and started.update.status == "in_progress"
    assert set(started.update.channels) == set(CHANNELS)
    statuses = await _statuses(sessions)
    assert statuses["checkout"] == statuses["payment"] == "maintenance"
    assert statuses["website"] == "operational"
    async with sessions() as session:  # a second firing does nothing
        assert await start_maintenance(session, settings, incident.id, START) is None
        assert await complete_maintenance(session, settings, incident.id, END - timedelta(minutes=1)) is None
        done = await complete_maintenance(session, settings, incident.id, END)
    assert done is not None and (await _incident(sessions, incident.id)).status == "completed"
    assert set((await _statuses(sessions)).values()) == {"operational"}
    async with sessions() as session:
        updates = list(
            await session.exec(
                select(IncidentUpdate)
                .where(IncidentUpdate.incident_id == incident.id)
                .order_by(col(IncidentUpdate.id))
            )
        )
        assert (
            await post_notice(session, settings, incident.id, phase="notice", channels=["push"], now=END)
            is None
        )
    assert [u.status for u in updates] == ["scheduled", "scheduled", "in_progress", "completed"]
    assert all(u.messages == TEXT for u in updates)


async def test_reschedule_then_extend_then_completion_waits(
    database_url: str, sessions: SessionFactory
) -> None:
    settings = make_settings(database_url)
    incident = await _schedule(sessions, settings)
    assert incident.id is not None
    later = START + timedelta(days=1)
    async with sessions() as session:
        moved = await reschedule_maintenance(
            session,
            settings,
            incident.id,
            starts_at=later,
            ends_at=later + timedelta(hours=2),
            now=NOW,
            author="cm",
        )
    assert isinstance(moved, Unannounced)  # no notice had gone out: the plan moved in silence
    current = await _incident(sessions, incident.id)
    assert current.scheduled_start_at == later and current.status == "scheduled"
    async with sessions() as session:
        assert await start_maintenance(session, settings, incident.id, later) is not None
        with pytest.raises(MaintenanceError, match="already started: only its end can move"):
            await reschedule_maintenance(
                session, settings, incident.id, starts_at=later + timedelta(hours=1), now=later, author="cm"
            )
        extended = await reschedule_maintenance(
            session, settings, incident.id, ends_at=later + timedelta(hours=3), now=later, author="cm"
        )
    assert isinstance(extended, Published) and extended.update.status == "in_progress"
    # The old end passes: the end job finds the window extended and waits for the new one.
    async with sessions() as session:
        assert await complete_maintenance(session, settings, incident.id, later + timedelta(hours=2)) is None
    assert (await _statuses(sessions))["checkout"] == "maintenance"
    async with sessions() as session:
        assert (
            await complete_maintenance(session, settings, incident.id, later + timedelta(hours=3)) is not None
        )
        with pytest.raises(MaintenanceError, match="is completed: it cannot be rescheduled"):
            await reschedule_maintenance(
                session, settings, incident.id, ends_at=later + timedelta(hours=5), now=later, author="cm"
            )


async def test_cancel_scheduled_and_running(database_url: str, sessions: SessionFactory) -> None:
    settings = make_settings(database_url)
    planned = await _schedule(sessions, settings)
    running = await _schedule(sessions, settings, title="Migration du site", components=["website"])
    assert planned.id is not None and running.id is not None
    async with sessions() as session:
        cancelled = await cancel_maintenance(session, settings, planned.id, now=NOW, author="cm")
        assert isinstance(cancelled, Unannounced) and cancelled.incident.status == "cancelled"
        assert await start_maintenance(session, settings, planned.id, START) is None  # stale start job
        await start_maintenance(session, settings, running.id, START)
    assert (await _statuses(sessions))["website"] == "maintenance"
    async with sessions() as session:
        await cancel_maintenance(session, settings, running.id, now=START + timedelta(minutes=5), author="cm")
        with pytest.raises(MaintenanceError, match="already cancelled"):
            await cancel_maintenance(session, settings, running.id, now=START, author="cm")
    assert (await _statuses(sessions))["website"] == "operational"
    assert (await _incident(sessions, running.id)).status == "cancelled"


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        # Times on the brand's clock, its zone named: never the UTC the user did not type.
        (
            {"ends_at": START - timedelta(minutes=1)},
            "--ends 25 nov. 01:59 must be after --starts 25 nov. 02:00 (Europe/Paris)",
        ),
        ({"ends_at": START}, "must be after --starts"),
        (
            {"starts_at": NOW - timedelta(hours=1)},
            "--starts 22 nov. 09:00 is in the past (it is now 22 nov. 10:00, Europe/Paris)",
        ),
        (
            {"starts_at": NOW - timedelta(days=2), "ends_at": NOW - timedelta(hours=1)},
            "--starts 20 nov. 10:00 is in the past",
        ),
        ({"components": ["teleporter"]}, "unknown component(s): teleporter"),
        ({"components": []}, "name at least one affected component"),
        ({"title": "  "}, "needs a title (--title)"),
        ({"message": {"fr": " "}}, "the message in 'fr' is empty (--message)"),
        ({"message": {"fr": TEXT["fr"], "de": "Wartung"}}, "unknown locale(s) de"),
        ({"message": {"fr": "Mise\x07 à jour"}}, "--message: control character U+0007 at position 5"),
        ({"message": {**TEXT, "en": "Up\x1b"}}, "--translation en: control character U+001B at position 3"),
        ({"title": "Mise à\njour\n"}, "--title: control character U+000A at position 7"),
        ({"starts_at": datetime(2026, 11, 25, 2, 0)}, "--starts 2026-11-25T02:00:00 has no time zone"),
    ],
)
async def test_bad_input_is_refused_and_nothing_is_written(
    database_url: str, sessions: SessionFactory, overrides: dict[str, object], expected: str
) -> None:
    settings = make_settings(database_url)
    with pytest.raises(MaintenanceError) as caught:
        await _schedule(sessions, settings, **overrides)
    assert expected in str(caught.value)
    assert isinstance(caught.value, PublishError)
    async with sessions() as session:
        assert list(await session.exec(select(Incident))) == []
        assert list(await session.exec(select(IncidentUpdate))) == []


async def test_unknown_id_and_blaming_text(database_url: str, sessions: SessionFactory) -> None:
    settings = make_settings(database_url)
    async with sessions() as session:
        for call in (
            start_maintenance(session, settings, 404, START),
            complete_maintenance(session, settings, 404, END),
            cancel_maintenance(session, settings, 404, now=NOW, author="cm"),
            reschedule_maintenance(session, settings, 404, ends_at=END, now=NOW, author="cm"),
            post_notice(session, settings, 404, phase="notice", channels=["email"], now=NOW),
        ):
            with pytest.raises(MaintenanceError, match="no maintenance #404"):
                await call
    with pytest.raises(LintRefused):
        await _schedule(
            sessions, settings, message={"fr": "Videz votre cache après la maintenance, c'est garanti."}
        )
    async with sessions() as session:
        assert list(await session.exec(select(Incident))) == []


async def _rendered(
    sessions: SessionFactory, update_id: int | None, channel: str, locale: str
) -> RenderedMessage:
    async with sessions() as session:
        rendition = (
            await session.exec(
                select(Rendition).where(
                    Rendition.update_id == update_id, Rendition.channel == channel, Rendition.locale == locale
                )
            )
        ).one()
    return RenderedMessage.from_json(rendition.payload)


async def test_an_earlier_end_is_announced_as_such_not_as_an_extension(
    database_url: str, sessions: SessionFactory
) -> None:
    settings = make_settings(database_url)
    await subscribe(sessions, settings, [NewSubscriber(email="fr@example.com", line=2)])
    incident = await _schedule(sessions, settings)  # 02:00 → 04:30 in Paris
    assert incident.id is not None
    async with sessions() as session:
        await start_maintenance(session, settings, incident.id, START)
        earlier = await reschedule_maintenance(
            session, settings, incident.id, ends_at=END - timedelta(hours=1), now=START, author="cm"
        )  # now 03:30
    assert isinstance(earlier, Published)
    french = (await _rendered(sessions, earlier.update.id, "email", "fr")).text
    assert "prend plus de temps" not in french
    assert (
        f"La maintenance se terminera plus tôt que prévu : fin désormais prévue à {nbsp('3 h 30')} "
        f"au lieu de {nbsp('4 h 30')}." in french
    )
    english = await _rendered(sessions, earlier.update.id, "push", "en")
    assert english.title == "Maison Exemple · Maintenance ending early"
    assert "longer" not in english.text and f"now expected to end at {nbsp('3:30 AM')}" in english.text
    # The end job moved with the end: the window closes at 03:30, not at 04:30.
    async with sessions() as session:
        assert (
            await complete_maintenance(session, settings, incident.id, END - timedelta(hours=1)) is not None
        )


async def test_complete_now_ends_a_running_maintenance_before_its_planned_end(
    database_url: str, sessions: SessionFactory
) -> None:
    settings = make_settings(database_url)
    await subscribe(
        sessions, settings, [NewSubscriber(email="fr@example.com", telegram_chat_id="1001", line=2)]
    )
    planned = await _schedule(sessions, settings)
    running = await _schedule(sessions, settings, title="Migration du site", components=["website"])
    assert planned.id is not None and running.id is not None
    early = START + timedelta(minutes=40)
    async with sessions() as session:
        await start_maintenance(session, settings, running.id, START)
        with pytest.raises(MaintenanceError, match=f"#{planned.id} has not started: only a running one"):
            await complete_maintenance_now(session, settings, planned.id, now=early, author="cm")
        done = await complete_maintenance_now(session, settings, running.id, now=early, author="cm")
    assert done.update.status == "completed" and set(done.update.channels) == set(CHANNELS)
    assert set(done.deliveries) == set(CHANNELS)  # "completed" on every channel
    current = await _incident(sessions, running.id)
    assert current.status == "completed" and current.resolved_at == early
    assert (await _statuses(sessions))["website"] == "operational"
    async with sessions() as session:  # the scheduler's end job, at the planned end: nothing left to do
        assert await complete_maintenance(session, settings, running.id, END) is None
        with pytest.raises(MaintenanceError, match=f"maintenance #{running.id} is already completed"):
            await complete_maintenance_now(session, settings, running.id, now=END, author="cm")
    async with sessions() as session:
        updates = await session.exec(select(IncidentUpdate).where(IncidentUpdate.incident_id == running.id))
        assert [u.status for u in updates] == ["scheduled", "in_progress", "completed"]


@pytest.mark.parametrize("locale", ["fr", "en"])
def test_a_completed_notice_thanks_once_on_every_channel(locale: str) -> None:
    for channel, message in Composer(default_locale="fr").render_all(_context(locale, "completed")).items():
        for text in (message.text, message.html):
            assert not text or len(re.findall(r"merci|thank", text, re.IGNORECASE)) == 1, (channel, text)
