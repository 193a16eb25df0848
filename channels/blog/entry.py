"""One update as a blog publisher sees it (`BlogEntry`), built from its rendered message, and
the publishers' contract (`BlogPublisher`)."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from broadcaster.message import RenderedMessage
from channels.base import CheckResult, Rejected

__all__ = ["BlogEntry", "BlogPublisher", "entry_from_message", "status_words"]

# The rendered Markdown opens with a status line: "**Statut : Résolu** · Commande …" (see goldens).
_BOLD_LEAD = re.compile(r"^\s*(\*\*|__)(.+?)\1")
_MARKUP = re.compile(r"[*_`#>\[\]]")
# Keys go inside an HTML comment and an attribute: no "--", no quotes, no angle brackets.
_SAFE_KEY = re.compile(r"[A-Za-z0-9:._@/+=]+(?:-[A-Za-z0-9:._@/+=]+)*")
_MAX_STATUS = 120


@dataclass(frozen=True, slots=True)
class BlogEntry:
    """One update as a publisher sees it: its section of the incident's timeline."""

    key: str  # the delivery's idempotency key: marks this update's section
    title: str  # the incident title, possibly changed ("Résolu : …")
    markdown: str
    html: str
    status: str  # status words of this update ("Résolu", "Cause identified")
    published_at: datetime  # aware UTC

    @property
    def marker(self) -> str:
        """The key as it is written into the post: as is when safe, else a stable digest."""
        if len(self.key) <= 200 and _SAFE_KEY.fullmatch(self.key):
            return self.key
        return "sha256-" + hashlib.sha256(self.key.encode("utf-8")).hexdigest()[:32]

    @property
    def heading(self) -> str:
        """The section heading: "2026-11-14 13:05 UTC — Résolu"."""
        return f"{self.published_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC — {self.status}"


class BlogPublisher(Protocol):
    """Where blog entries go; `publish` returns what the next update continues from."""

    async def publish(self, entry: BlogEntry, thread_ref: str) -> str: ...

    async def check(self) -> CheckResult: ...

    async def aclose(self) -> None: ...


def status_words(markdown: str) -> str:
    """The status of an update from its first line: "**Statut : Résolu** · …" gives "Résolu"."""
    first = next((line.strip() for line in markdown.splitlines() if line.strip()), "")
    bold = _BOLD_LEAD.match(first)
    if bold:
        label, colon, value = bold.group(2).partition(":")
        words = value if colon and value.strip() else label
    else:
        words = first
    words = " ".join(_MARKUP.sub("", words).split())
    if len(words) > _MAX_STATUS:
        words = words[: _MAX_STATUS - 1].rstrip() + "…"
    return words or "Update"


def entry_from_message(message: RenderedMessage, idempotency_key: str, now: datetime) -> BlogEntry:
    """Build the entry of one rendered blog message; `Rejected` if it has nothing to publish."""
    markdown = message.parts[0] if message.parts else ""
    if not markdown.strip():
        raise Rejected("nothing to publish: the rendered blog message has no Markdown")
    if not idempotency_key:
        raise Rejected("a blog update needs an idempotency key to mark its section")
    return BlogEntry(
        key=idempotency_key,
        title=" ".join(message.title.split()),
        markdown=markdown.strip("\n"),
        html=message.html.strip("\n"),
        status=status_words(markdown),
        published_at=now.astimezone(UTC),
    )
