"""Every text a customer reads exists in their language or is visibly missing (issue #10, scenario 11).

Run as a user runs it: the CLI in capture mode, then what each channel would have sent.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlmodel import select

from broadcaster.cli import app
from broadcaster.db import SessionFactory
from broadcaster.inbox.bot import StatusBot
from broadcaster.inbox.filing import file_pending
from broadcaster.inbox.inbound import store_inbound
from broadcaster.message import RenderedMessage
from broadcaster.models import Message, Rendition, utcnow
from broadcaster.publishing.maintenance import post_notice, schedule_maintenance
from broadcaster.web import create_app
from channels.base import InboundMessage
from tests.conftest import make_settings
from tests.e2e.helpers import draft, open_
from tests.served import served
from tests.test_cli import runner

TITLE = ["--title", "Paiement indisponible", "--title-translation", "en:Payment unavailable"]
OPEN = [
    "incident", "open", *TITLE, "--impact", "major", "-c", "payment",
    "-m", "Le paiement échoue. Nous sommes désolés, nous enquêtons.",
    "-t", "en:Payment fails. We are sorry, we are investigating.",
    "--alternative", "Commandez au 01 23 45 67 89",
    "--alternative-translation", "en:Order on +33 1 23 45 67 89",
    "--eta", "2h", "--next-update", "30m", "--json",
]  # fmt: skip


def subscribers(workdir: Path) -> None:
    (workdir / "c.csv").write_text(
        "email,telegram_chat_id,locale,components\nfr@example.com,,fr,\nen@example.com,,en,\n",
        encoding="utf-8",
    )
    assert runner.invoke(app, ["subscribers", "import", "c.csv"]).exit_code == 0


def captured_email(workdir: Path, address: str) -> tuple[str, str]:
    """The subject and the text + HTML bodies of the last e-mail captured for `address`."""
    with sqlite3.connect(workdir / "data" / "broadcaster.db") as db:
        row = db.execute(
            "SELECT title, body, html FROM captured_message WHERE channel = 'email' AND target = ?"
            " ORDER BY id DESC",
            (address,),
        ).fetchone()
    return row[0], row[1] + row[2]


def test_title_alternative_and_compensation_reach_each_reader_in_their_language(workdir: Path) -> None:
    subscribers(workdir)
    opened = runner.invoke(app, OPEN)
    assert opened.exit_code == 0, opened.output
    assert json.loads(opened.output)["fallbacks"] == []  # everything has its English text
    _subject, text = captured_email(workdir, "en@example.com")
    assert "<h1" in text and "Payment unavailable" in text and "Paiement" not in text
    assert "Order on +33 1 23 45 67 89" in text and "Commandez" not in text
    _subject, text = captured_email(workdir, "fr@example.com")
    assert "Paiement indisponible" in text and "Commandez au 01 23 45 67 89" in text

    resolved = runner.invoke(
        app,
        [
            "incident", "resolve", "1", "-m", "Le paiement fonctionne de nouveau. Merci !",
            "-t", "en:Payment works again. Thank you!",
            "--compensation", "Livraison offerte avec le code MERCI",
            "--compensation-translation", "en:Free delivery with the code MERCI", "--json",
        ],
    )  # fmt: skip
    assert resolved.exit_code == 0, resolved.output
    subject, text = captured_email(workdir, "en@example.com")
    assert "Resolved: Payment unavailable" in subject
    assert "Free delivery with the code MERCI" in text and "Livraison offerte" not in text
    _subject, text = captured_email(workdir, "fr@example.com")
    assert "Livraison offerte avec le code MERCI" in text


def test_a_missing_translation_is_announced_with_how_many_will_read_the_fallback(workdir: Path) -> None:
    subscribers(workdir)
    untranslated = [a for a in OPEN if a not in ("--title-translation", "en:Payment unavailable")]
    preview = runner.invoke(
        app,
        [
            "preview", "--title", "Paiement indisponible", "-c", "payment",
            "-m", "Le paiement échoue. Nous sommes désolés, nous enquêtons.", "--eta", "2h",
        ],
    )  # fmt: skip
    assert preview.exit_code == 0, preview.output
    assert "1 message(s) to en subscribers will show the message, title in French" in preview.output
    assert "--translation en:…, --title-translation en:…" in preview.output

    opened = runner.invoke(app, untranslated)
    assert opened.exit_code == 0, opened.output
    assert json.loads(opened.output)["fallbacks"] == [
        {"locale": "en", "subscribers": 1, "missing": ["title"]}
    ]
    _subject, text = captured_email(workdir, "en@example.com")
    assert "Paiement indisponible" in text  # the fallback, announced above

    human = runner.invoke(
        app, ["incident", "update", "1", "-m", "Toujours en panne, désolés.", "--compensation", "x"]
    )
    assert human.exit_code == 2  # --compensation is for the resolution: not an option of update
    update = runner.invoke(app, ["incident", "update", "1", "-m", "Nous avons trouvé la cause."])
    assert update.exit_code == 0, update.output
    assert "1 message(s) to en subscribers will show the message, title in French" in update.output


def test_a_translation_into_a_locale_the_brand_does_not_publish_in_is_refused(workdir: Path) -> None:
    result = runner.invoke(app, [*OPEN[:-1], "--title-translation", "de:Zahlung"])
    assert result.exit_code == 2
    assert "--title-translation: unknown locale 'de'" in result.output


async def test_pages_feed_and_bot_show_the_title_in_the_readers_language(
    database_url: str, sessions: SessionFactory
) -> None:
    settings = make_settings(database_url)
    opened = await open_(
        sessions, settings, draft("investigating", "Le paiement échoue, désolés.", "Payment fails, sorry."),
        title="Paiement indisponible", title_translations={"en": "Payment unavailable"}, force=True,
    )  # fmt: skip
    app = create_app(settings, dispatch=False)
    async with served(app) as client:
        english = (await client.get("/status", headers={"Accept-Language": "en"})).text
        french = (await client.get("/status", headers={"Accept-Language": "fr"})).text
        page = (await client.get(f"/incidents/{opened.incident.id}", headers={"Accept-Language": "en"})).text
    assert "Payment unavailable" in english and "Paiement indisponible" not in english
    assert "Ongoing incident: " in english  # English punctuation, not the French " : "
    assert "Paiement indisponible" in french
    assert "<h1>Payment unavailable</h1>" in page
    customer = InboundMessage("telegram", "77:1", "77", "sam", "is checkout down?", utcnow())
    await store_inbound(sessions, [customer])
    await file_pending(sessions, bot=StatusBot(settings))
    async with sessions() as session:
        (answer,) = await session.exec(select(Message.text).where(Message.direction == "out"))
    assert "Payment unavailable" in answer


async def test_a_maintenance_title_is_translated_and_its_e_mail_escapes_what_it_shows(
    database_url: str, sessions: SessionFactory
) -> None:
    settings = make_settings(
        database_url,
        components={"checkout": {"label": {"fr": "Commande <b>", "en": "Checkout <b>"}, "critical": True}},
    )
    now = datetime.now(UTC)
    async with sessions() as session:
        planned = await schedule_maintenance(
            session, settings, title="Mise à jour du paiement", title_translations={"en": "Payment upgrade"},
            starts_at=now + timedelta(days=2), ends_at=now + timedelta(days=2, hours=2),
            components=["checkout"], message={"fr": "Nous mettons à jour.", "en": "We are upgrading."},
            author="test", now=now,
        )  # fmt: skip
    assert planned.id is not None
    async with sessions() as session:
        notice = await post_notice(session, settings, planned.id, phase="notice", channels=["email"], now=now)
    assert notice is not None and notice.fallbacks == []
    async with sessions() as session:
        rows = await session.exec(select(Rendition).where(Rendition.update_id == notice.update.id))
        emails = {r.locale: RenderedMessage.from_json(r.payload) for r in rows}
    assert "Payment upgrade" in emails["en"].title and "Mise à jour" not in emails["en"].html
    assert "Mise à jour du paiement" in emails["fr"].title
    for email in emails.values():
        assert "<b>" not in email.html and "&lt;b&gt;" in email.html  # a label is text, not markup
