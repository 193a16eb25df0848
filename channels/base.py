"""The channel contract (DESIGN §4): capabilities as data, a typed error tree, one result type.

Rendering is pure and shared: `broadcaster.compose.render` renders every channel from its templates and
the capabilities below, so an adapter only sends, parses inbound payloads purely, and checks its
credentials. It never returns a bare bool: failures are `DeliveryError` subclasses that carry
what the dispatcher needs to decide between retrying, waiting and giving up.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from broadcaster.message import RenderedMessage
from channels.retry_hint import retry_after_seconds

if TYPE_CHECKING:
    from channels.pacing import Pacer

__all__ = [
    "Capabilities",
    "Channel",
    "CheckResult",
    "DeliveryError",
    "DeploymentBudget",
    "Inbound",
    "InboundMessage",
    "Overflow",
    "PacesEachMessage",
    "RateLimited",
    "Rejected",
    "Reply",
    "Replying",
    "SendResult",
    "SharesPacing",
    "Target",
    "TargetBusy",
    "Unauthorized",
    "Unavailable",
]


class Overflow(enum.Enum):
    SPLIT = "split"  # several messages (X thread, Telegram parts)
    TRUNCATE = "truncate"  # cut at a word boundary with an ellipsis


class Inbound(enum.Enum):
    NONE = "none"
    WEBHOOK = "webhook"
    POLL = "poll"


@dataclass(frozen=True, slots=True)
class Capabilities:
    """A channel's limits, declared once and read by compose, dispatch and the linter."""

    max_body: int  # characters after rendering; 0 = unlimited
    max_title: int = 0  # 0 = no title
    overflow: Overflow = Overflow.SPLIT
    inbound: Inbound = Inbound.NONE
    threads: bool = False  # follow-ups of an incident continue the first post (X thread, FB comments…)


@dataclass(frozen=True, slots=True)
class Target:
    """Where one delivery goes: an address the provider understands, plus per-recipient data."""

    address: str
    locale: str = "fr"
    unsubscribe_url: str = ""
    reply_token: str = ""
    # For channels that thread: the provider id returned (`SendResult.provider_message_id`) for the
    # previous update of the same incident on this target; empty for an incident's first message.
    thread_ref: str = ""


@dataclass(frozen=True, slots=True)
class Reply:
    """Where an answer to a customer goes: their conversation, and the message of theirs it answers.

    Built by the inbox from the conversation's latest customer message; stored with the outbox row
    (`Delivery.reply`) so a retry answers the same message in the same thread.
    """

    conversation_key: str  # InboundMessage.conversation_key
    customer_handle: str  # InboundMessage.customer_handle (an e-mail address, an X handle…)
    in_reply_to: str  # InboundMessage.external_id of the customer message answered
    locale: str = "fr"
    subject: str = ""  # e-mail: the customer's subject (the answer says "Re: …")
    references: str = ""  # e-mail: the customer's References header, to continue the thread
    reply_token: str = ""  # e-mail: "<update>.<token>", so the customer's next reply threads back

    def to_dict(self) -> dict[str, str]:
        return {name: getattr(self, name) for name in self.__slots__}

    @classmethod
    def from_dict(cls, data: Mapping[str, str]) -> Reply:
        return cls(**{name: str(data.get(name, "")) for name in cls.__slots__})


@dataclass(frozen=True, slots=True)
class SendResult:
    """What the provider said when it accepted a message.

    For channels that thread, `provider_message_id` is what the next update continues from
    (X: the thread's last tweet; Facebook: the post; WordPress: the post id).
    """

    provider_message_id: str
    extra_ids: tuple[str, ...] = ()  # ids of further parts (thread replies, split messages)


@dataclass(frozen=True, slots=True)
class CheckResult:
    ok: bool
    detail: str
    fix: str = ""


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """A customer message from any channel, normalised once (consumed by the inbox)."""

    channel: str
    external_id: str
    conversation_key: str
    customer_handle: str
    text: str
    received_at: datetime
    customer_name: str = ""
    language: str = ""
    reply_to: str = ""
    raw: Mapping[str, object] = field(default_factory=dict)


class DeliveryError(Exception):
    """Base of every send failure; `reason` is safe to show (no secrets)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class RateLimited(DeliveryError):
    """The provider asked us to slow down; retry after `retry_after` seconds.

    `retry_after` is always finite and within a day, whatever the adapter computed
    (`channels.retry_hint`); the dispatcher clamps it to `max_pause_seconds`.
    """

    def __init__(self, reason: str, retry_after: float) -> None:
        super().__init__(reason)
        self.retry_after = retry_after_seconds(retry_after)


class TargetBusy(RateLimited):
    """This one target is at its own limit (a Telegram group's 20 messages a minute): only its
    message waits `retry_after` seconds; the rest of the channel goes on."""


class Unauthorized(DeliveryError):
    """Credentials refused: nothing sent on this channel will work until config is fixed."""


class Rejected(DeliveryError):
    """Permanent for this target (bad address, bot blocked, content refused): do not retry."""


class Unavailable(DeliveryError):
    """Transient (connection refused, 5xx, timeout): retry with backoff."""


@runtime_checkable
class Channel(Protocol):
    """What every adapter offers. `name` matches its config section and template folder."""

    name: str
    capabilities: Capabilities

    async def send(self, message: RenderedMessage, target: Target, *, idempotency_key: str) -> SendResult: ...

    def parse_inbound(self, body: bytes, headers: Mapping[str, str]) -> list[InboundMessage]: ...

    async def check(self) -> CheckResult: ...

    async def aclose(self) -> None: ...


class DeploymentBudget(Protocol):
    """The limits of the whole deployment, whichever worker sends (the dispatcher's shared pacing:
    Redis, PostgreSQL, or the process alone)."""

    def window(self, scope: str, limit: int, window: float) -> Pacer:
        """The pacer of one rate: at most `limit` in any `window`, a pause holding for every worker."""
        ...

    async def take(self, scope: str, limit: int, window: float, cost: int) -> tuple[float, str] | None:
        """`cost` more in `scope`'s last `window`: (0, reservation) when they fit, else (seconds
        until they do, ""); None when the budget cannot be asked (pace locally)."""
        ...

    async def give_back(self, scope: str, reservation: str, cost: int) -> None:
        """Return `cost` of a reservation that was not used."""
        ...


@runtime_checkable
class SharesPacing(Protocol):
    """A channel with limits of its own (per chat, per group, a posting budget) that draws them
    from the deployment's shared budget when there is one, so they hold across workers."""

    def share_pacing(self, pacing: DeploymentBudget) -> None: ...


@runtime_checkable
class PacesEachMessage(Protocol):
    """A channel that sends one delivery as several messages with waits between them (Telegram:
    a split message, 1 s apart in a chat): it takes the channel's turn for each message itself,
    after its own waits, instead of the dispatcher taking one turn around the whole send."""

    def pace_messages_with(self, pacer: Pacer) -> None: ...


@runtime_checkable
class Replying(Protocol):
    """A channel customers write to, so that we answer them in their own thread.

    `provider_message_id` of the result has the same form as that channel's
    `InboundMessage.external_id`, so our own answer, echoed back by the provider, is recognised
    and never filed as a customer message.
    """

    async def reply(self, message: RenderedMessage, to: Reply, *, idempotency_key: str) -> SendResult: ...
