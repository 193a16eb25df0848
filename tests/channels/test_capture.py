"""CaptureChannel against a real migrated database (SQLite, and PostgreSQL when configured)."""

from __future__ import annotations

from sqlmodel import col, select

from broadcaster.db import SessionFactory
from broadcaster.delivery.capture import PART_SEPARATOR, CaptureChannel
from broadcaster.message import RenderedMessage
from broadcaster.models import CapturedMessage
from channels.base import Channel, Reply, Replying, Target


async def captured(sessions: SessionFactory) -> list[CapturedMessage]:
    async with sessions() as session:
        return list(await session.exec(select(CapturedMessage).order_by(col(CapturedMessage.id))))


async def test_answer_is_stored_once_with_its_conversation_and_the_message_it_answers(
    sessions: SessionFactory,
) -> None:
    channel = CaptureChannel("telegram", sessions)
    text = "Bonjour Amélie,\n<b>Fish & chips</b> : votre commande est partie."
    answer = RenderedMessage(channel="telegram", locale="fr", kind="reply", parts=(text,))
    to = Reply(conversation_key="5512873340", customer_handle="amelie_durand", in_reply_to="5512873340:4821")

    first = await channel.reply(answer, to, idempotency_key="message:17")
    again = await channel.reply(answer, to, idempotency_key="message:17")  # a retry after a lost ack

    [row] = await captured(sessions)
    assert (row.channel, row.target, row.thread_ref) == ("telegram", "5512873340", "5512873340:4821")
    assert (row.body, row.title, row.html, row.idempotency_key) == (text, "", "", "message:17")
    assert first == again and first.provider_message_id == "capture:message:17"
    assert isinstance(channel, Replying) and isinstance(channel, Channel)


async def test_broadcast_and_answer_side_by_side(sessions: SessionFactory) -> None:
    channel = CaptureChannel("twitter", sessions)
    update = RenderedMessage(
        channel="twitter", locale="fr", kind="update", parts=("Incident 1/2", "Détails 2/2")
    )
    answer = RenderedMessage(channel="twitter", locale="fr", kind="reply", parts=("Réparé, merci !",))

    await channel.send(
        update, Target("timeline", thread_ref="2121588456944567049"), idempotency_key="7:twitter"
    )
    await channel.reply(
        answer, Reply("1452183629364871170", "@camille", "dm:2121592105989046371"), idempotency_key="m:3"
    )

    broadcast, reply = await captured(sessions)
    assert (broadcast.target, broadcast.thread_ref) == ("timeline", "2121588456944567049")
    assert broadcast.body == PART_SEPARATOR.join(update.parts)
    assert (reply.target, reply.thread_ref, reply.body) == (
        "1452183629364871170",
        "dm:2121592105989046371",
        "Réparé, merci !",
    )
