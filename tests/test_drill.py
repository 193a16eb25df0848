"""`broadcaster drill`: a TEST message through the real adapters to the test audience only, against
the local peers; the round trips (e-mail reply, getWebhookInfo, the bot's /status) as `serve` runs them."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import aiosmtplib
import pytest
from sqlmodel import select
from typer.testing import CliRunner

from broadcaster.cli import app
from broadcaster.config import ConfigError, Settings, parse_settings
from broadcaster.db import SessionFactory
from broadcaster.delivery.subscribers import NewSubscriber
from broadcaster.drill.run import FAILED, OK, SKIPPED, DrillReport, last_drill, run_drill
from broadcaster.inbox.inbound import Poller, reply_address_exists
from broadcaster.models import (
    CapturedMessage,
    Conversation,
    Delivery,
    DrillRun,
    InboundRecord,
    Incident,
    utcnow,
)
from broadcaster.web import create_app
from broadcaster.web.app import inbound_email_listener
from channels.email.imap import ImapMailbox
from tests.conftest import make_settings
from tests.e2e.helpers import TOKEN, subscribe
from tests.peers.imap import ImapPeer
from tests.peers.smtp import SmtpPeer, free_port
from tests.peers.telegram import TelegramPeer

runner = CliRunner()
TESTER = "oncall@maison-exemple.fr"
TEST_CHAT = "-1009990001"
DOMAIN = "reply.shop.example"


def drill_settings(
    database_url: str,
    smtp: SmtpPeer | None,
    telegram: TelegramPeer | None,
    *,
    email: dict[str, Any] | None = None,
    bot: dict[str, Any] | None = None,
    drill: dict[str, Any] | None = None,
    **channels: dict[str, Any],
) -> Settings:
    """Live e-mail and Telegram against the peers, the other channels off unless given."""
    names = ("email", "telegram", "twitter", "facebook", "push", "blog")
    sections: dict[str, Any] = {name: {"enabled": False} for name in names}
    if smtp is not None:
        sections["email"] = {"host": smtp.host, "port": smtp.port, "security": "none", "reply_domain": DOMAIN,
                             **(email or {})}  # fmt: skip
    if telegram is not None:
        sections["telegram"] = {"token": TOKEN, "base_url": telegram.base_url, "rate_per_second": 0,
                                "per_chat_interval_seconds": 0, "polling_timeout_seconds": 1}  # fmt: skip
        sections["telegram"].update(bot or {})
    sections.update(channels)
    audience = {
        "email_addresses": [TESTER],
        "telegram_chat_id": TEST_CHAT,
        "wait_seconds": 15,
        **(drill or {}),
    }
    return make_settings(database_url, channels=sections, drill=audience)


def rows(report: DrillReport) -> dict[str, Any]:
    return {r.channel: r for r in report.results}


async def count(sessions: SessionFactory, table: type[Any]) -> int:
    async with sessions() as session:
        return len(list(await session.exec(select(table))))


async def test_a_drill_reaches_the_test_audience_only_and_never_the_outbox(
    database_url: str, sessions: SessionFactory
) -> None:
    with SmtpPeer() as smtp, TelegramPeer() as telegram:
        settings = drill_settings(database_url, smtp, telegram)
        customers = [
            NewSubscriber(email="client@example.com", line=2),
            NewSubscriber(telegram_chat_id="4242", line=3),
        ]
        await subscribe(sessions, settings, customers)
        report = await run_drill(settings, sessions, wait=False, by="camille")
        ((_, recipients, mail),) = smtp.messages
        sent = list(telegram.messages)
    assert report.ok, report.results
    assert recipients == [TESTER]  # the customer got nothing
    assert mail["Subject"].startswith("TEST — exercice / drill")
    assert "TEST — exercice : ceci est un test" in mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert mail["Reply-To"].startswith("reply+0.") and mail["Reply-To"].endswith(f"@{DOMAIN}")
    assert [m["chat_id"] for m in sent] == [TEST_CHAT] and "TEST — exercice" in sent[0]["text"]
    found = rows(report)
    assert found["email"].status == OK and found["email"].provider_ids == (mail["Message-ID"],)
    assert found["email"].first_accepted_seconds is not None
    assert found["telegram"].status == OK and found["telegram"].provider_ids == (str(sent[0]["message_id"]),)
    assert found["telegram (webhook)"].status == OK and "polling mode" in found["telegram (webhook)"].detail
    assert found["telegram (/status)"].status == SKIPPED and "--no-wait" in found["telegram (/status)"].detail
    assert found["email (reply)"].status == SKIPPED and "inbound_enabled" in found["email (reply)"].fix
    for table in (Incident, Delivery, CapturedMessage, InboundRecord, Conversation):
        assert await count(sessions, table) == 0, table  # no history, no deliveries, no inbox
    async with sessions() as session:
        (run,) = await session.exec(select(DrillRun))
    assert run.ok and run.by == "camille" and run.finished_at is not None
    assert {r["channel"] for r in run.results} >= {"email", "telegram", "telegram (webhook)"}


async def test_capture_mode_and_a_missing_audience_fail_with_the_fix_and_public_channels_wait_for_public(
    database_url: str, sessions: SessionFactory
) -> None:
    with SmtpPeer() as smtp, TelegramPeer() as telegram:
        settings = drill_settings(
            database_url, smtp, telegram, email={"capture": True}, drill={"telegram_chat_id": ""},
            push={"enabled": True}, twitter={"enabled": True},
        )  # fmt: skip
        report = await run_drill(settings, sessions, wait=False)
        assert smtp.messages == [] and telegram.messages == []
    found = rows(report)
    assert not report.ok
    assert found["email"].status == FAILED and "set channels.email.capture = false" in found["email"].fix
    assert found["push"].status == FAILED and "vapid_private_key_file" in found["push"].fix
    assert found["telegram"].status == FAILED
    assert found["telegram"].detail == "no test audience: set drill.telegram_chat_id"
    assert found["twitter"].status == SKIPPED and found["twitter"].detail == "skipped (public: use --public)"
    assert await count(sessions, CapturedMessage) == 0  # a drill is not even captured


async def test_public_channels_get_the_test_post_with_public(
    database_url: str, sessions: SessionFactory, tmp_path: Path
) -> None:
    (tmp_path / "posts").mkdir()
    blog = {"enabled": True, "publisher": "markdown", "markdown_dir": str(tmp_path / "posts")}
    settings = drill_settings(database_url, None, None, blog=blog, drill={"email_addresses": []})
    skipped = await run_drill(settings, sessions, wait=False)
    assert rows(skipped)["blog"].status == SKIPPED and not any((tmp_path / "posts").iterdir())
    report = await run_drill(settings, sessions, public=True, wait=False)
    assert rows(report)["blog"].status == OK, report.results
    (post,) = (tmp_path / "posts").iterdir()
    assert "TEST — exercice" in post.read_text(encoding="utf-8")


def drill_reply(to: str, in_reply_to: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = f"On call <{TESTER}>"
    message["To"] = to
    message["Subject"] = "Re: TEST — exercice / drill"
    message["Message-ID"] = "<drill-reply-1@maison-exemple.fr>"
    message["In-Reply-To"] = in_reply_to
    message.set_content("bien reçu\n\n> TEST — exercice")
    return message


async def sent_mail(smtp: SmtpPeer) -> EmailMessage:
    assert await asyncio.to_thread(smtp.wait_for, 1, 15), "the drill e-mail never reached the SMTP peer"
    return smtp.messages[0][2]


async def test_a_reply_through_the_smtp_listener_is_the_drills_round_trip_not_a_conversation(
    database_url: str, sessions: SessionFactory
) -> None:
    port = free_port()
    with SmtpPeer() as smtp:
        settings = drill_settings(
            database_url, smtp, None, email={"inbound_enabled": True, "inbound_port": port}
        )
        listener = inbound_email_listener(settings, sessions)
        assert listener is not None
        async with listener:
            drilling = asyncio.create_task(run_drill(settings, sessions))
            mail = await sent_mail(smtp)
            async with aiosmtplib.SMTP(
                hostname="127.0.0.1", port=port, local_hostname="client.example"
            ) as client:
                errors, _ = await client.send_message(drill_reply(mail["Reply-To"], mail["Message-ID"]))
            assert errors == {}
            report = await asyncio.wait_for(drilling, 30)
            async with aiosmtplib.SMTP(
                hostname="127.0.0.1", port=port, local_hostname="client.example"
            ) as client:
                forged = mail["Reply-To"].replace("reply+0.", "reply+0.0000")  # no drill gave this token out
                with pytest.raises(aiosmtplib.SMTPRecipientsRefused):
                    await client.send_message(drill_reply(forged, mail["Message-ID"]))
    reply = rows(report)["email (reply)"]
    assert report.ok and reply.status == OK and TESTER in reply.detail
    assert await count(sessions, InboundRecord) == 0 and await count(sessions, Conversation) == 0


async def test_a_reply_read_over_imap_is_the_drills_round_trip(
    database_url: str, sessions: SessionFactory
) -> None:
    with SmtpPeer() as smtp, ImapPeer() as imap:
        imap_keys = {"imap_host": imap.host, "imap_port": imap.port, "imap_security": "none",
                     "imap_username": imap.username, "imap_password": imap.password}  # fmt: skip
        settings = drill_settings(database_url, smtp, None, email=imap_keys)

        async def known(address: Any) -> bool:
            return await reply_address_exists(sessions, address)

        mailbox = ImapMailbox(settings.channels.email, known_address=known)
        poller = Poller(sessions, {"email:imap": mailbox.poll}, 0.2)  # as `serve` polls the reply mailbox
        stop = asyncio.Event()
        polling = asyncio.create_task(poller.run(stop))
        try:
            drilling = asyncio.create_task(run_drill(settings, sessions))
            mail = await sent_mail(smtp)
            imap.append(drill_reply(mail["Reply-To"], mail["Message-ID"]).as_bytes())
            report = await asyncio.wait_for(drilling, 30)
        finally:
            stop.set()
            await polling
            await mailbox.aclose()
    assert rows(report)["email (reply)"].status == OK, report.results
    assert await count(sessions, InboundRecord) == 0


async def test_no_reply_within_the_wait_fails_with_what_to_do(
    database_url: str, sessions: SessionFactory
) -> None:
    with SmtpPeer() as smtp:
        settings = drill_settings(
            database_url, smtp, None, email={"inbound_enabled": True}, drill={"wait_seconds": 1}
        )
        report = await run_drill(settings, sessions)
    reply = rows(report)["email (reply)"]
    assert not report.ok and reply.status == FAILED and "within 1 s" in reply.detail
    assert "broadcaster serve" in reply.fix


async def test_the_bot_answers_status_in_the_test_chat(database_url: str, sessions: SessionFactory) -> None:
    with TelegramPeer() as telegram:
        settings = drill_settings(database_url, None, telegram, drill={"email_addresses": []})
        serving = create_app(settings, telegram_polling=True)
        async with serving.router.lifespan_context(serving):  # `serve --telegram-polling`
            drilling = asyncio.create_task(run_drill(settings, sessions))
            assert await asyncio.to_thread(telegram.wait_for, 1, 15)
            telegram.queue_message(int(TEST_CHAT), "/status")  # someone of the team, in the test chat
            report = await asyncio.wait_for(drilling, 30)
        texts = telegram.texts(TEST_CHAT)
    assert rows(report)["telegram (/status)"].status == OK, report.results
    assert report.ok and len(texts) == 2 and "aucun incident" in texts[1]


async def test_last_drill_says_when_and_what_failed(database_url: str, sessions: SessionFactory) -> None:
    assert await last_drill(sessions) == (False, "never: run `broadcaster drill`")
    async with sessions() as session:
        session.add(DrillRun(reply_token="a" * 32, finished_at=utcnow() - timedelta(days=3), ok=True,
                             results=[{"channel": "email", "status": OK}]))  # fmt: skip
        await session.commit()
    assert await last_drill(sessions) == (True, "3 days ago, all ok")
    async with sessions() as session:
        session.add(DrillRun(reply_token="b" * 32, finished_at=utcnow(), results=[
            {"channel": "email", "status": OK}, {"channel": "push", "status": FAILED},
            {"channel": "telegram (/status)", "status": FAILED}]))  # fmt: skip
        await session.commit()
    assert await last_drill(sessions) == (False, "just now, failed: push, telegram (/status)")


def config(tmp_path: Path, smtp: SmtpPeer, telegram: TelegramPeer) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(
        f'[database]\nurl = "sqlite+aiosqlite:///{tmp_path}/b.db"\n'
        f'[drill]\nemail_addresses = ["{TESTER}"]\ntelegram_chat_id = "{TEST_CHAT}"\n'
        f'[channels.email]\nhost = "127.0.0.1"\nport = {smtp.port}\nsecurity = "none"\n'
        f'[channels.telegram]\ntoken = "{TOKEN}"\nbase_url = "{telegram.base_url}"\n'
        "[channels.push]\nenabled = false\n",
        encoding="utf-8",
    )
    assert runner.invoke(app, ["--config", str(path), "init"]).exit_code == 0
    return path


def test_the_cli_prints_json_exits_1_on_a_refusal_and_doctor_shows_the_last_drill(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "250")  # the table on one line per row
    with SmtpPeer() as smtp, TelegramPeer() as telegram:
        path = config(tmp_path, smtp, telegram)
        never = runner.invoke(app, ["--config", str(path), "doctor", "--json"])
        assert {d["channel"]: d["detail"] for d in json.loads(never.stdout)}["last drill"].startswith("never")

        ready = runner.invoke(app, ["--config", str(path), "drill", "--no-wait", "--json", "--by", "camille"])
        assert ready.exit_code == 0, ready.output
        shape = json.loads(ready.stdout)
        assert set(shape) == {"drill_id", "ok", "started_at", "finished_at", "by", "results"}
        assert shape["ok"] is True and shape["by"] == "camille"
        assert set(shape["results"][0]) == {"channel", "status", "detail", "fix", "provider_ids",
                                            "first_accepted_seconds"}  # fmt: skip
        doctor = runner.invoke(app, ["--config", str(path), "doctor", "--json"])
        last = {d["channel"]: d for d in json.loads(doctor.stdout)}["last drill"]
        assert last["ok"] and last["detail"] == "just now, all ok"

        smtp.reject(TESTER)
        refused = runner.invoke(app, ["--config", str(path), "drill", "--no-wait"])
        assert refused.exit_code == 1
        assert "failed" in refused.stdout and "drill.email_addresses" in refused.stdout
        doctor = runner.invoke(app, ["--config", str(path), "doctor", "--json"])
        last = {d["channel"]: d for d in json.loads(doctor.stdout)}["last drill"]
        assert not last["ok"] and last["detail"] == "just now, failed: email"


async def test_a_blocked_test_chat_fails_with_the_fix_and_a_set_webhook_is_reported(
    database_url: str, sessions: SessionFactory
) -> None:
    with TelegramPeer() as telegram:
        settings = drill_settings(database_url, None, telegram, drill={"email_addresses": []})
        telegram.block(TEST_CHAT)
        refused = await run_drill(settings, sessions, wait=False)
        telegram.reset()
        telegram.webhook_url = "https://status.shop.example/webhooks/telegram"
        ready = await run_drill(settings, sessions, wait=False)
    row = rows(refused)["telegram"]
    assert not refused.ok and row.status == FAILED and "blocked" in row.detail
    assert "drill.telegram_chat_id" in row.fix and "telegram (webhook)" not in rows(refused)
    webhook = rows(ready)["telegram (webhook)"]
    assert webhook.status == OK and webhook.detail.startswith("webhook set: https://status.shop.example/")


@pytest.mark.parametrize(
    ("drill", "named"),
    [
        ({"push_device": "topic:all"}, "drill.push_device"),  # a topic is every app user
        ({"email_addresses": ["not an address"]}, "drill.email_addresses"),
        ({"telegram_chat_id": "12; DROP"}, "drill.telegram_chat_id"),
        ({"wait_seconds": 0}, "drill.wait_seconds"),
        ({"audience": {"twitter": ["@someone"]}}, "drill.audience"),  # a public channel has no audience
        ({"audience": {"email": ["a@example.com"]}}, "drill.email_addresses"),  # its own key says it
    ],
)
def test_the_drill_section_refuses_what_is_no_test_audience(drill: dict[str, Any], named: str) -> None:
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        parse_settings({"drill": drill}, "config.toml")


async def test_the_public_telegram_channel_gets_the_test_message_only_with_public(
    database_url: str, sessions: SessionFactory
) -> None:
    with TelegramPeer() as telegram:
        settings = drill_settings(
            database_url, None, telegram, bot={"channel_id": "@shop_status"}, drill={"email_addresses": []}
        )
        await run_drill(settings, sessions, wait=False)
        assert [m["chat_id"] for m in telegram.messages] == [TEST_CHAT]
        report = await run_drill(settings, sessions, public=True, wait=False)
        assert [m["chat_id"] for m in telegram.messages] == [TEST_CHAT, TEST_CHAT, "@shop_status"]
    assert len(rows(report)["telegram"].provider_ids) == 2
