"""The blog channel: every update of an incident lands in ONE external post, newest update first.

The built-in incident page and Atom feed (`broadcaster.web`) need no adapter; this one
publishes on top of them to WordPress (`channels.blog.wordpress`) or to a Hugo/Jekyll content folder
(`channels.blog.markdown_folder`). The first update creates the post; `target.thread_ref` then names it
(a WordPress post id, a file name) and each follow-up puts its section on top of the timeline.
A section is marked with the delivery's idempotency key, so a retried update is never added twice.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime

from broadcaster.message import RenderedMessage
from channels.base import CheckResult, InboundMessage, SendResult, Target, Unauthorized
from channels.blog.entry import BlogEntry, BlogPublisher, entry_from_message
from channels.blog.markdown_folder import MarkdownFolderPublisher
from channels.blog.settings import BlogSettings
from channels.blog.wordpress import WordPressPublisher
from channels.registry import CAPABILITIES

__all__ = ["BlogChannel"]


class _NoPublisher:
    """`publisher = "none"`: the built-in page is all there is; sending here is a config error."""

    async def publish(self, entry: BlogEntry, thread_ref: str) -> str:
        raise Unauthorized("no blog publisher configured: set channels.blog.publisher")

    async def check(self) -> CheckResult:
        return CheckResult(True, "ok: built-in incident page and Atom feed only (no external publisher)")

    async def aclose(self) -> None:
        return None


class BlogChannel:
    """Publishes incident updates to the configured external blog (`channels.blog` settings).

    >>> channel = BlogChannel(settings.channels.blog)
    >>> first = await channel.send(rendered, Target("incidents"), idempotency_key="41:blog:incidents")
    >>> await channel.send(later, Target("incidents", thread_ref=first.provider_message_id), ...)
    """

    name = "blog"
    capabilities = CAPABILITIES["blog"]

    def __init__(self, settings: BlogSettings, *, clock: Callable[[], datetime] | None = None) -> None:
        self._settings = settings
        self._clock = clock or (lambda: datetime.now(UTC))
        self._publisher: BlogPublisher
        if settings.publisher == "wordpress":
            self._publisher = WordPressPublisher(settings)
        elif settings.publisher == "markdown":
            self._publisher = MarkdownFolderPublisher(settings)
        else:
            self._publisher = _NoPublisher()

    def __repr__(self) -> str:
        return f"BlogChannel(publisher={self._publisher!r})"

    async def send(self, message: RenderedMessage, target: Target, *, idempotency_key: str) -> SendResult:
        """Create the incident's post (no `thread_ref`) or put this update on top of it."""
        entry = entry_from_message(message, idempotency_key, self._clock())
        ref = await self._publisher.publish(entry, target.thread_ref.strip())
        return SendResult(provider_message_id=ref)

    def parse_inbound(self, body: bytes, headers: Mapping[str, str]) -> list[InboundMessage]:
        """A blog has no inbound messages (comments are not routed to the inbox)."""
        return []

    async def check(self) -> CheckResult:
        """Whether the configured publisher can be written to."""
        return await self._publisher.check()

    async def aclose(self) -> None:
        """Release the publisher's connections; the channel may be used again afterwards."""
        await self._publisher.aclose()
