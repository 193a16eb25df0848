"""Capture mode: a real adapter for channels without credentials.

It stores exactly what would have been sent (title, every part, HTML) in `captured_message`,
so `make run` works with zero configuration and a drill shows the real output. Nothing leaves.
An answer to a customer is stored the same way: its conversation as target, the customer's
message it answers as `thread_ref`.
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy.dialects import postgresql, sqlite

from broadcaster.db import SessionFactory, dialect_name, writing
from broadcaster.message import RenderedMessage
from broadcaster.models import CapturedMessage, utcnow
from channels.base import Capabilities, CheckResult, InboundMessage, Reply, SendResult, Target
from channels.registry import CAPABILITIES

__all__ = ["CaptureChannel", "PART_SEPARATOR"]

PART_SEPARATOR = "\n\n----- next part -----\n\n"


class CaptureChannel:
    """Stands in for channel `name`; idempotent per delivery key (a replay stores nothing new)."""

    def __init__(self, name: str, sessions: SessionFactory) -> None:
        self.name = name
        self.capabilities: Capabilities = CAPABILITIES[name]
        self._sessions = sessions

    def __repr__(self) -> str:
        return f"CaptureChannel({self.name!r})"

    async def send(self, message: RenderedMessage, target: Target, *, idempotency_key: str) -> SendResult:
        await self._store(message, target.address, target.thread_ref, idempotency_key)
        return SendResult(provider_message_id=f"capture:{idempotency_key}")

    async def reply(self, message: RenderedMessage, to: Reply, *, idempotency_key: str) -> SendResult:
        """Store the answer for conversation `to.conversation_key`, replying to `to.in_reply_to`."""
        await self._store(message, to.conversation_key, to.in_reply_to, idempotency_key)
        return SendResult(provider_message_id=f"capture:{idempotency_key}")

    async def _store(
        self, message: RenderedMessage, target: str, thread_ref: str, idempotency_key: str
    ) -> None:
        values = {
            "channel": self.name,
            "target": target,
            "idempotency_key": idempotency_key,
            "thread_ref": thread_ref,
            "title": message.title,
            "body": PART_SEPARATOR.join(message.parts),
            "html": message.html,
            "created_at": utcnow(),
        }
        async with self._sessions() as session, writing(session):
            dialect = dialect_name(session)
            insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
            statement = insert(CapturedMessage).values(**values).on_conflict_do_nothing()
            await (await session.connection()).execute(statement)
            await session.commit()

    def parse_inbound(self, body: bytes, headers: Mapping[str, str]) -> list[InboundMessage]:
        """Nothing ever arrives on a captured channel."""
        return []

    async def check(self) -> CheckResult:
        return CheckResult(
            ok=True,
            detail="capture mode: messages are stored, not sent",
            fix=f"add credentials under [channels.{self.name}] to send for real",
        )

    async def aclose(self) -> None:
        return None
