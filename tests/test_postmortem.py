"""Postmortems: the draft from a real incident timeline, saving, and publishing on the blog channel.

The incident goes through the real path (open, update, resolve, delivered in capture mode); its
times are then set to known instants so the report's local times can be checked.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import update as sql_update
from sqlmodel import col, select

from broadcaster.compose.render import Composer
from broadcaster.config import Settings
from broadcaster.db import SessionFactory
from broadcaster.models import (
    CapturedMessage,
    Component,
    Conversation,
    Delivery,
    Incident,
    IncidentUpdate,
    Message,
)
from broadcaster.publishing.incidents import Published
from broadcaster.publishing.postmortem import (
    PLACEHOLDERS,
    PostmortemError,
    draft_postmortem,
    missing_sections,
    publish_postmortem,
    save_postmortem,
)
from channels.blog.markup import markdown_text
from tests.conftest import make_settings
from tests.e2e.helpers import deliver, draft, follow_up, live_settings, open_, people, resolve, subscribe
from tests.peers.telegram import TelegramPeer
from tests.peers.wordpress import WordPressPeer

START = datetime(2026, 11, 14, 12, 5, tzinfo=UTC)  # 13 h 05 in Paris
TIMES = [START, START + timedelta(minutes=35), START + timedelta(minutes=135)]
CAUSE = "Une mise à jour de notre prestataire de paiement a bloqué les commandes. <script>alert(1)</script>"
CHANGES = "Nous testerons chaque mise à jour du paiement avant de l'activer, dès décembre."
COMPOSER = Composer(default_locale="fr")


@dataclass(frozen=True)
class Story:
    incident_id: int
    settings: Settings


async def resolved_story(sessions: SessionFactory, settings: Settings) -> Story:
    """Three updates delivered (one e-mail dead), two customer conversations linked, one not."""
    await subscribe(sessions, settings, people(4))  # 2 e-mail, 2 Telegram
    opened = await open_(
        sessions,
        settings,
        draft("investigating", "Le paiement échoue. Désolés, nous enquêtons.", "Payment fails. Sorry."),
        force=True,
    )
    incident_id = opened.incident.id
    assert incident_id is not None
    published: list[Published] = [opened]
    published.append(
        await follow_up(
            sessions,
            settings,
            incident_id,
            draft("identified", "Cause trouvée,\ncorrectif en cours.", "Cause found, fix on its way."),
        )
    )
    published.append(
        await resolve(
            sessions,
            settings,
            incident_id,
            draft("resolved", "Tout fonctionne. Merci pour votre patience.", "All good. Thank you."),
        )
    )
    for p in published:
        await deliver(sessions, settings, p)
    async with sessions() as session:
        for p, at in zip(published, TIMES, strict=True):
            await session.exec(
                sql_update(IncidentUpdate).where(col(IncidentUpdate.id) == p.update.id).values(created_at=at)
            )  # type: ignore[call-overload]
        await session.exec(
            sql_update(Incident)
            .where(col(Incident.id) == incident_id)
            .values(created_at=TIMES[0], resolved_at=TIMES[2])  # type: ignore[call-overload]
        )
        dead = (await session.exec(select(Delivery).where(Delivery.channel == "email"))).first()
        assert dead is not None
        dead.status = "dead"
        session.add(dead)
        for n, linked in enumerate((incident_id, incident_id, None)):
            conversation = Conversation(channel="telegram", conversation_key=f"c{n}", incident_id=linked)
            session.add(conversation)
            await session.flush()
            assert conversation.id is not None
            texts = ["le site est en panne ?", "toujours en panne"] if n == 0 else ["paiement refusé"]
            for i, text in enumerate(texts):
                session.add(
                    Message(conversation_id=conversation.id, direction="in", channel="telegram",
                            external_id=f"m{n}-{i}", text=text)
                )  # fmt: skip
            session.add(
                Message(conversation_id=conversation.id, direction="out", channel="telegram", text="ok")
            )
        await session.commit()
    return Story(incident_id, settings)


@pytest.fixture
async def story(database_url: str, sessions: SessionFactory) -> Story:
    return await resolved_story(sessions, make_settings(database_url))


FRENCH = [
    "# Rapport d'incident : Paiement indisponible",
    "Le 14 novembre 2026, de 13 h 05 à 15 h 20 (2 h 15 min), Maison Exemple a connu un incident",
    "- **Services touchés :** Commande",
    "- **Gravité :** Forte perturbation",
    "- **Durée :** 2 h 15 min",
    "- **13 h 05** — Nous enquêtons : Le paiement échoue. Désolés, nous enquêtons.",
    "- **13 h 40** — Cause identifiée : Cause trouvée, correctif en cours.",
    "- **15 h 20** — Résolu : Tout fonctionne. Merci pour votre patience.",
    # Every channel is in capture mode: nothing was sent to customers, and the report says so.
    "- **Messages envoyés :** 0, dont 1 non remis",
    "  - Telegram : 0 envoyé, 6 capturés",
    "  - E-mail : 0 envoyé, 5 capturés, 1 non remis",
    "  - Blog : 0 envoyé, 3 capturés",
    "- **Messages capturés (mode capture, non envoyés aux clients) :** 23",
    "- **Conversations clients liées à l'incident :** 2, avec 3 messages de clients",
    f"## Cause\n\n{CAUSE}\n",
    f"## Ce que nous changeons\n\n{CHANGES}\n",
]
ENGLISH = [
    "# Incident report: Paiement indisponible",
    "On November 14, 2026, from 1:05 PM to 3:20 PM (2 hr 15 min), Maison Exemple had an incident",
    "- **Affected services:** Checkout",
    "- **Severity:** Major disruption",
    "- **1:05 PM** — We're investigating: Payment fails. Sorry.",
    "- **1:40 PM** — Cause identified: Cause found, fix on its way.",
    "- **3:20 PM** — Resolved: All good. Thank you.",
    "- **Messages sent:** 0, 1 of them not delivered",
    "  - E-mail: 0 sent, 5 captured, 1 not delivered",
    "- **Messages captured (capture mode, not sent to customers):** 23",
    "- **Customer conversations about the incident:** 2, with 3 messages from customers",
    f"## Cause\n\n{CAUSE}\n",
    f"## What we change\n\n{CHANGES}\n",
]


@pytest.mark.parametrize(("locale", "expected"), [("fr", FRENCH), ("en", ENGLISH)])
async def test_draft_tells_the_whole_story_in_order(
    story: Story, sessions: SessionFactory, locale: str, expected: list[str]
) -> None:
    async with sessions() as session:
        markdown = await draft_postmortem(
            session, story.settings, story.incident_id, locale=locale, cause=CAUSE, changes=CHANGES
        )
    assert "13\u00a0h\u00a005" in markdown or "1:05\u00a0PM" in markdown  # a clock never breaks in two
    markdown = markdown.replace("\u00a0", " ")  # the lines below compare the words
    positions = []
    for line in expected:
        assert line in markdown, f"{line!r} missing from:\n{markdown}"
        positions.append(markdown.index(line))
    assert positions == sorted(positions)  # summary, timeline in order, numbers, cause, changes
    assert missing_sections(markdown) == []


async def test_numbers_count_only_what_live_channels_sent_apart_from_capture(
    database_url: str, sessions: SessionFactory
) -> None:
    """Telegram live (its peer), every other channel in capture mode: only Telegram's were sent."""
    with TelegramPeer() as telegram:
        settings = live_settings(database_url, smtp=None, telegram=telegram)
        story = await resolved_story(sessions, settings)
        assert len(telegram.messages) == 9  # 2 subscribers and the public channel, three updates
    async with sessions() as session:
        markdown = await draft_postmortem(session, settings, story.incident_id, locale="en")
    for line in (
        "- **Messages sent:** 9, 1 of them not delivered",
        "  - Telegram: 9 sent\n",
        "  - E-mail: 0 sent, 5 captured, 1 not delivered",
        "- **Messages captured (capture mode, not sent to customers):** 17",
    ):
        assert line in markdown, f"{line!r} missing from:\n{markdown}"


async def test_draft_defaults_to_the_brand_locale_with_placeholders_for_the_staff(
    story: Story, sessions: SessionFactory
) -> None:
    async with sessions() as session:
        markdown = await draft_postmortem(session, story.settings, story.incident_id)
    assert markdown.startswith("# Rapport d'incident")
    assert PLACEHOLDERS["fr"]["cause"] in markdown and PLACEHOLDERS["fr"]["changes"] in markdown
    assert missing_sections(markdown) == ["cause", "changes"]


async def test_unknown_unresolved_and_bad_locale_are_clear_errors(
    database_url: str, sessions: SessionFactory
) -> None:
    settings = make_settings(database_url)
    opened = await open_(
        sessions, settings, draft("investigating", "Le paiement échoue. Désolés.", "Sorry."), force=True
    )
    async with sessions() as session:
        with pytest.raises(PostmortemError, match="no incident #999"):
            await draft_postmortem(session, settings, 999)
        with pytest.raises(PostmortemError, match=r"is not resolved yet \(it is investigating\)"):
            await draft_postmortem(session, settings, opened.incident.id or 0)
        with pytest.raises(PostmortemError, match="is not resolved yet"):
            await save_postmortem(session, opened.incident.id or 0, "# Rapport")
        with pytest.raises(PostmortemError, match="no postmortem template for locale 'de'"):
            await draft_postmortem(session, settings, opened.incident.id or 0, locale="de")


async def _saved(story: Story, sessions: SessionFactory, cause: str = CAUSE) -> str:
    async with sessions() as session:
        markdown = await draft_postmortem(
            session, story.settings, story.incident_id, cause=cause, changes=CHANGES
        )
        await save_postmortem(session, story.incident_id, markdown)
    return markdown


async def test_publish_posts_one_blog_message_and_refuses_a_second(
    story: Story, sessions: SessionFactory
) -> None:
    markdown = await _saved(story, sessions)
    async with sessions() as session:
        published = await publish_postmortem(
            session,
            story.settings,
            COMPOSER,
            story.incident_id,
            author="ana",
            now=TIMES[2] + timedelta(days=1),
        )
    assert published.deliveries == {"blog": 1}
    assert (published.update.kind, published.update.status, published.update.author) == (
        "postmortem",
        "resolved",
        "ana",
    )
    assert published.update.created_at == TIMES[2] + timedelta(days=1)
    counts = await deliver(sessions, story.settings, published)
    assert counts == {"blog": {"captured": 1}}
    async with sessions() as session:
        captured = list(
            await session.exec(select(CapturedMessage).where(CapturedMessage.title.startswith("Rapport")))
        )  # type: ignore[attr-defined]
        component = (await session.exec(select(Component).where(Component.name == "checkout"))).one()
        incident = await session.get(Incident, story.incident_id)
    assert len(captured) == 1 and captured[0].channel == "blog"
    assert captured[0].title == "Rapport d'incident : Paiement indisponible"
    # The Markdown leaves for Hugo/Jekyll: its HTML and template delimiters are references there.
    assert markdown_text(markdown.strip()) in captured[0].body
    # Staff text stays text: markdown-it without raw HTML escapes it.
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in captured[0].html and "<script>" not in captured[0].html
    assert "<h2>Cause</h2>" in captured[0].html
    assert component.status == "operational"  # a report after the fact leaves components alone
    assert incident is not None and incident.status == "resolved"
    async with sessions() as session:
        with pytest.raises(PostmortemError, match="already published; use --force"):
            await publish_postmortem(session, story.settings, COMPOSER, story.incident_id, author="ana")
        again = await publish_postmortem(
            session, story.settings, COMPOSER, story.incident_id, author="ana", force=True
        )
    assert again.deliveries == {"blog": 1}


async def test_publish_refusals_write_nothing(
    database_url: str, story: Story, sessions: SessionFactory
) -> None:
    async def updates() -> int:
        async with sessions() as session:
            return len(list(await session.exec(select(IncidentUpdate))))

    before = await updates()
    async with sessions() as session:
        with pytest.raises(
            PostmortemError,
            match=r"has no saved postmortem: draft it first \(broadcaster incident postmortem",
        ):
            await publish_postmortem(session, story.settings, COMPOSER, story.incident_id, author="ana")
        with pytest.raises(PostmortemError, match="the postmortem is empty"):
            await save_postmortem(session, story.incident_id, "  \n")
        placeholders = await draft_postmortem(session, story.settings, story.incident_id, cause=CAUSE)
        await save_postmortem(session, story.incident_id, placeholders)
        with pytest.raises(PostmortemError, match="still has a placeholder for: changes"):
            await publish_postmortem(session, story.settings, COMPOSER, story.incident_id, author="ana")
    await _saved(story, sessions)
    no_blog = make_settings(database_url, channels={"blog": {"enabled": False}})
    async with sessions() as session:
        with pytest.raises(
            PostmortemError, match=r"blog channel is not enabled: set \[channels.blog\] enabled = true"
        ):
            await publish_postmortem(session, no_blog, COMPOSER, story.incident_id, author="ana")
    assert await updates() == before


@pytest.fixture(scope="module")
def wordpress() -> Iterator[WordPressPeer]:
    with WordPressPeer() as peer:
        yield peer


async def test_postmortem_tops_the_incident_post_on_wordpress(
    database_url: str, sessions: SessionFactory, wordpress: WordPressPeer
) -> None:
    wordpress.reset()
    blog = {"publisher": "wordpress", "wordpress_url": wordpress.base_url, "wordpress_user": wordpress.user,
            "wordpress_app_password": wordpress.app_password}  # fmt: skip
    story = await resolved_story(sessions, make_settings(database_url, channels={"blog": blog}))
    await _saved(story, sessions)
    async with sessions() as session:
        published = await publish_postmortem(
            session, story.settings, COMPOSER, story.incident_id, author="ana"
        )
    assert await deliver(sessions, story.settings, published) == {"blog": {"sent": 1}}
    (post,) = wordpress.posts.values()  # the incident's one post, now headed by its report
    content = post["content"]
    assert post["title"] == "Rapport d'incident : Paiement indisponible"
    assert content.count('<section class="incident-update"') == 4
    first = content.split('<section class="incident-update"')[1]
    assert "— Rapport d&#x27;incident</h2>" in first or "— Rapport d'incident</h2>" in first
    assert "&lt;script&gt;" in first and "<script>" not in content
