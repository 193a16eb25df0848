"""SQLModel tables of DESIGN §3 needed by the broadcast path.

Datetimes are stored as UTC and always come back aware (`UTCDateTime`), on SQLite too.
`Delivery` is the outbox: unique on (update, channel, target), which is the idempotency key.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.types import TypeDecorator
from sqlmodel import JSON, Column, Field, SQLModel

__all__ = [
    "AUTOMATED",
    "ApiToken",
    "AuditEvent",
    "CapturedMessage",
    "ChannelPause",
    "Component",
    "Conversation",
    "Delivery",
    "DrillRun",
    "INERT",
    "InboundRecord",
    "Incident",
    "IncidentUpdate",
    "LIVE_CONDITION",
    "LoginFailure",
    "LoopState",
    "MAX_ROW_ID",
    "Message",
    "MonitorAlert",
    "NOT_OPEN",
    "OpenRequest",
    "PaceSlot",
    "PollCursor",
    "RecoveryCode",
    "Rendition",
    "ScheduledRun",
    "SetupLink",
    "StaffSession",
    "StaffUser",
    "Subscriber",
    "Subscription",
    "UNVERIFIED",
    "UTCDateTime",
    "VERIFIED",
    "utcnow",
]

#: Row ids are signed 64-bit integers on SQLite and PostgreSQL: no row has an id past this.
MAX_ROW_ID = 2**63 - 1
#: The outbox rows still to send (pending) or in flight (sending): the claim's partial index.
LIVE_CONDITION = "status IN ('pending', 'sending')"


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Store naive UTC, return aware UTC: SQLite has no time zones, PostgreSQL gets timestamptz."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given where an aware UTC one is required")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _when(*, nullable: bool = True, index: bool = False) -> Any:
    return Field(default=None, sa_column=Column(UTCDateTime(), nullable=nullable, index=index))


def _created() -> Any:
    return Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))


def _json(default: Any) -> Any:
    return Field(default_factory=default, sa_column=Column(JSON, nullable=False))


class Component(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True, index=True, max_length=64)
    description: str = ""
    status: str = Field(default="operational", max_length=32)
    updated_at: datetime = _created()


#: Incident statuses that are not "open": a draft is not public yet, a resolved one is over; a
#: maintenance is open only while in progress (scheduled: upcoming; completed or cancelled: over).
NOT_OPEN = ("draft", "resolved", "scheduled", "completed", "cancelled")


class Incident(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(default="incident", max_length=16)
    title: str = Field(max_length=200)  # in the brand's default locale
    title_translations: dict[str, str] = _json(dict)  # locale -> title, for the other locales
    status: str = Field(max_length=32, index=True)
    impact: str = Field(default="major", max_length=16)
    components: list[str] = _json(list)
    next_update_at: datetime | None = _when()
    workaround: dict[str, str] = _json(dict)  # locale -> the alternative
    compensation: str | None = None  # in the brand's default locale
    compensation_translations: dict[str, str] = _json(dict)
    scheduled_start_at: datetime | None = _when()
    scheduled_end_at: datetime | None = _when()
    postmortem: str | None = None
    notes: str = ""  # staff-only: e.g. the customer messages that made the spike detector draft it
    answer_conversations: bool = True  # at resolution, answer every open conversation linked to it
    holding_messages: bool = True  # a missed promise posts the holding message; False: staff reminded only
    created_at: datetime = _created()
    resolved_at: datetime | None = _when()

    def title_in(self, locale: str) -> str:
        """The title readers of `locale` see: its translation (en_GB, else en), else the default's."""
        language = locale.replace("-", "_").split("_")[0].lower()
        return self.title_translations.get(locale) or self.title_translations.get(language) or self.title


class IncidentUpdate(SQLModel, table=True):
    __tablename__ = "incident_update"

    id: int | None = Field(default=None, primary_key=True)
    incident_id: int = Field(foreign_key="incident.id", index=True)
    kind: str = Field(default="update", max_length=32)  # update, resolved, maintenance_notice, postmortem
    status: str = Field(max_length=32)
    messages: dict[str, str] = _json(dict)
    eta_at: datetime | None = _when()
    next_update_at: datetime | None = _when()
    channels: list[str] = _json(list)
    impact: str = Field(default="", max_length=16)  # the incident's, as of this update
    components: list[str] = _json(list)  # the incident's, as of this update
    author: str = Field(default="", max_length=120)
    created_at: datetime = _created()


class Subscriber(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(default="", max_length=200)
    locale: str = Field(default="fr", max_length=16)
    created_at: datetime = _created()


class Subscription(SQLModel, table=True):
    __table_args__ = (sa.UniqueConstraint("channel", "address", name="uq_subscription_channel_address"),)

    id: int | None = Field(default=None, primary_key=True)
    subscriber_id: int = Field(foreign_key="subscriber.id", index=True)
    channel: str = Field(max_length=32)
    address: str = Field(max_length=1024)  # a Web Push subscription (JSON) is the longest
    components: list[str] = _json(list)  # empty: every component
    confirmed: bool = True
    active: bool = Field(default=True, index=True)
    unsubscribe_token: str = Field(unique=True, max_length=64)
    reply_token: str = Field(unique=True, max_length=32)  # reply+<update>.<token>@ threads replies
    deactivated_reason: str = ""
    deactivated_at: datetime | None = _when()
    created_at: datetime = _created()


class Rendition(SQLModel, table=True):
    """One rendered message per (update, channel, locale): render once, personalise per recipient."""

    __table_args__ = (sa.UniqueConstraint("update_id", "channel", "locale", name="uq_rendition"),)

    id: int | None = Field(default=None, primary_key=True)
    update_id: int = Field(foreign_key="incident_update.id", index=True)
    channel: str = Field(max_length=32)
    locale: str = Field(max_length=16)
    payload: str  # RenderedMessage.to_json()


class Delivery(SQLModel, table=True):
    """The outbox row for one (update, channel, target), or for one message that is not a broadcast.

    A broadcast row points at its `rendition`. Every other row carries its own `payload` (a
    `RenderedMessage` as JSON): an answer to a customer (`message_id`, sent in the customer's
    thread as described by `reply`) or a staff alert (neither). They share the retries, the
    leases and the dead letters of broadcasts.
    """

    __table_args__ = (
        sa.UniqueConstraint("update_id", "channel", "target", name="uq_delivery_key"),
        sa.UniqueConstraint("message_id", name="uq_delivery_message_id"),
        sa.Index("ix_delivery_claim", "channel", "status", "next_attempt_at"),
        # The live rows only, in the order a claim takes them: a claim reads what it takes (and the
        # rows in flight), not the outbox's sent history (migration 0013).
        sa.Index(
            "ix_delivery_due",
            "channel",
            "next_attempt_at",
            "id",
            sqlite_where=sa.text(LIVE_CONDITION),
            postgresql_where=sa.text(LIVE_CONDITION),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    # "broadcast" (an update to a subscriber or a public post), "answer" (to a customer, in their
    # thread: `message_id`, `reply`) or "alert" (to the staff: `payload` only).
    kind: str = Field(default="broadcast", max_length=16, sa_column_kwargs={"server_default": "broadcast"})
    update_id: int | None = Field(default=None, foreign_key="incident_update.id", index=True)
    channel: str = Field(max_length=32)
    target: str = Field(max_length=1024)
    locale: str = Field(max_length=16)
    rendition_id: int | None = Field(default=None, foreign_key="rendition.id")
    subscription_id: int | None = Field(default=None, foreign_key="subscription.id")
    message_id: int | None = Field(default=None, foreign_key="message.id")
    payload: str = ""  # RenderedMessage.to_json() when there is no rendition
    reply: dict[str, str] = _json(dict)  # channels.base.Reply fields when answering a customer
    status: str = Field(default="pending", max_length=16)
    attempts: int = 0
    next_attempt_at: datetime = _created()
    lease_until: datetime | None = _when()
    claim_token: str = Field(default="", max_length=32)
    last_error: str = ""
    provider_message_id: str = Field(default="", max_length=200)
    created_at: datetime = _created()
    sent_at: datetime | None = _when()
    requeued_at: datetime | None = _when()  # the retry window counts from here once requeued


class CapturedMessage(SQLModel, table=True):
    """What a capture-mode channel would have sent, exactly (nothing leaves the machine)."""

    __tablename__ = "captured_message"

    id: int | None = Field(default=None, primary_key=True)
    channel: str = Field(max_length=32, index=True)
    target: str = Field(max_length=320)
    idempotency_key: str = Field(unique=True, max_length=400)
    thread_ref: str = Field(default="", max_length=400)  # what a threading channel would reply to
    title: str = ""
    body: str = ""
    html: str = ""
    created_at: datetime = _created()


class InboundRecord(SQLModel, table=True):
    """A customer message received by a webhook or poller, kept until the inbox works it."""

    __tablename__ = "inbound_message"
    __table_args__ = (sa.UniqueConstraint("channel", "external_id", name="uq_inbound_external_id"),)

    id: int | None = Field(default=None, primary_key=True)
    channel: str = Field(max_length=32)
    external_id: str = Field(max_length=200)
    conversation_key: str = Field(max_length=200)
    customer_handle: str = Field(default="", max_length=200)
    customer_name: str = Field(default="", max_length=200)
    text: str = ""
    language: str = Field(default="", max_length=16)
    reply_to: str = Field(default="", max_length=200)
    received_at: datetime = _created()  # the sender's clock (Date, date, created_time): display only
    raw: dict[str, Any] = _json(dict)
    created_at: datetime = _created()  # ours: when it reached us
    processed_at: datetime | None = _when(index=True)  # set when the inbox has filed it


class ScheduledRun(SQLModel, table=True):
    """A scheduled job that acted, or was missed: its key is inserted in the transaction of what the
    job does, so a job fired twice (two nodes, a retry) acts once."""

    __tablename__ = "scheduled_run"

    key: str = Field(primary_key=True, max_length=200)  # the job id, e.g. "notice:12:72"
    kind: str = Field(max_length=32)
    incident_id: int | None = Field(default=None, foreign_key="incident.id", index=True)
    outcome: str = Field(max_length=16)  # done | missed | skipped
    detail: str = ""
    due_at: datetime = _created()
    ran_at: datetime = _created()


class PollCursor(SQLModel, table=True):
    """Where a poller (X mentions, X DMs) stopped, so a restart neither misses nor repeats."""

    __tablename__ = "poll_cursor"

    name: str = Field(primary_key=True, max_length=64)
    cursor: str = Field(default="", max_length=200)
    updated_at: datetime = _created()


class LoopState(SQLModel, table=True):
    """The last state a process reported for one of its loops (a channel's dispatch, a poller),
    for `broadcaster doctor`; `/healthz` reads the process's own `LoopHealth` instead."""

    __tablename__ = "loop_health"

    name: str = Field(primary_key=True, max_length=64)  # "push", "email:imap"…
    down: bool = False
    error: str = Field(default="", max_length=200)  # the exception's type: never its text
    restarts: int = 0
    process: str = Field(default="", max_length=200)  # host:pid that reported it
    since: datetime = _created()  # when it went down (or came back up)
    updated_at: datetime = _created()


class ChannelPause(SQLModel, table=True):
    """A channel whose circuit breaker is open in a worker, for `broadcaster deliveries`: since
    when its provider has not answered, and when it tries again. No row: the channel sends."""

    __tablename__ = "channel_pause"

    channel: str = Field(primary_key=True, max_length=32)
    opened_at: datetime = _created()
    next_probe_at: datetime = _created()
    process: str = Field(default="", max_length=200)  # host:pid of the worker that paused it


class PaceSlot(SQLModel, table=True):
    """One shared pacing scope (a bot's overall rate, one chat, one group, X's post budget) for
    every worker of a PostgreSQL deployment: the next moment a send may be granted, in seconds
    of the database's clock. A row idle past `expires_at` can be forgotten."""

    __tablename__ = "pace_slot"
    __table_args__ = (sa.Index("ix_pace_slot_ring", "ring", "next_grant"),)

    scope: str = Field(primary_key=True, max_length=200)  # "telegram:123", "telegram:123:chat:42"…
    next_grant: float = 0.0  # epoch seconds, database clock
    expires_at: float = Field(default=0.0, index=True)
    ring: str = Field(default="", max_length=200)  # a moving-window log's rows: one per send it allows


class Conversation(SQLModel, table=True):
    """One customer on one channel: every message they send lands in the same conversation."""

    __table_args__ = (sa.UniqueConstraint("channel", "conversation_key", name="uq_conversation_key"),)

    id: int | None = Field(default=None, primary_key=True)
    channel: str = Field(max_length=32)
    conversation_key: str = Field(max_length=200)
    customer_handle: str = Field(default="", max_length=200)
    customer_name: str = Field(default="", max_length=200)
    locale: str = Field(default="", max_length=16)
    incident_id: int | None = Field(default=None, foreign_key="incident.id", index=True)
    status: str = Field(default="open", max_length=16, index=True)  # open → pending → closed
    assignee: str = Field(default="", max_length=120)
    labels: list[str] = _json(list)
    # The status bot answers at most once per state of the incident it answered about: the id of
    # that incident update, 0 for "no incident open"; None while it has not answered.
    bot_answered_state: int | None = None
    handed_off: bool = False  # an agent wrote here: the bot stays quiet until the conversation closes
    created_at: datetime = _created()
    last_message_at: datetime = _created()


VERIFIED, UNVERIFIED, AUTOMATED = "verified", "unverified", "automated"  # `Message.trust`
INERT = (UNVERIFIED, AUTOMATED)  # messages that never act, nor set an answer's subject


class Message(SQLModel, table=True):
    """A message in a conversation, in (from the customer) or out (bot or agent)."""

    __table_args__ = (
        sa.UniqueConstraint("channel", "external_id", name="uq_message_external_id"),
        sa.Index("ix_message_intent_created_at", "intent", "created_at"),  # spike detection's count
    )

    id: int | None = Field(default=None, primary_key=True)
    conversation_id: int = Field(foreign_key="conversation.id", index=True)
    direction: str = Field(max_length=3)  # "in" or "out"
    channel: str = Field(max_length=32)
    external_id: str | None = Field(default=None, max_length=200)  # provider id; unique per channel
    text: str = ""
    intent: str = Field(default="", max_length=32)
    language: str = Field(default="", max_length=16)
    reply_to: str = Field(default="", max_length=200)
    author: str = Field(default="", max_length=120)  # agent name, "bot", or "" for the customer
    # Incoming only: VERIFIED (the channel vouches for the sender; e-mail: From is the subscription's
    # address), UNVERIFIED (e-mail whose From is another address) or AUTOMATED (machine-made).
    # Only verified messages act (subscribe, unsubscribe) or get a bot answer.
    trust: str = Field(default="", max_length=16)
    # Outgoing messages only: queued → sent | failed (with the provider's reason).
    delivery_status: str = Field(default="", max_length=16)
    delivery_error: str = ""
    created_at: datetime = _created()  # ours: when we received it (the inbox's windows count by it)
    sent_at: datetime | None = _when()  # the sender's clock, for display only (None: ours, or unknown)


class DrillRun(SQLModel, table=True):
    """One `broadcaster drill`: what each channel did with the TEST message, and the e-mail reply
    that came back to it (`reply+0.<reply_token>@…`, recorded by the inbound path, never filed)."""

    __tablename__ = "drill_run"

    id: int | None = Field(default=None, primary_key=True)
    started_at: datetime = _created()
    finished_at: datetime | None = _when(index=True)  # None while it runs (or if it was killed)
    ok: bool = False
    results: list[dict[str, Any]] = _json(list)  # one per channel: channel, status, detail, fix, ids…
    by: str = Field(default="", max_length=120)
    reply_token: str = Field(unique=True, max_length=32)
    replied_at: datetime | None = _when()
    reply_from: str = Field(default="", max_length=200)


class MonitorAlert(SQLModel, table=True):
    """An alert group a monitor reported (`/webhooks/alerts/<source>`) and the draft it made."""

    __tablename__ = "monitor_alert"
    __table_args__ = (sa.UniqueConstraint("source", "group_key", name="uq_monitor_alert_group"),)

    id: int | None = Field(default=None, primary_key=True)
    source: str = Field(max_length=32)
    group_key: str = Field(max_length=200)
    incident_id: int | None = Field(default=None, foreign_key="incident.id", index=True)
    status: str = Field(max_length=16)  # firing or resolved, as last reported
    summary: str = Field(default="", max_length=300)
    first_seen_at: datetime = _created()
    last_seen_at: datetime = _created()


class StaffUser(SQLModel, table=True):
    """A member of the staff: what they may do is their role (`auth.roles`); no password until set up."""

    __tablename__ = "staff_user"

    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(unique=True, index=True, max_length=254)  # lower-cased
    display_name: str = Field(max_length=120)
    locale: str = Field(default="fr", max_length=8)
    role: str = Field(max_length=16)
    password_hash: str | None = Field(default=None, max_length=200)  # Argon2id
    totp_secret: str | None = Field(default=None, max_length=64)  # base32; set at enrolment
    totp_enrolled_at: datetime | None = _when()
    totp_last_step: int = 0  # the last time step a code was accepted for: a code works once
    disabled: bool = False
    created_at: datetime = _created()
    last_login_at: datetime | None = _when()


class RecoveryCode(SQLModel, table=True):
    """One of a user's ten single-use second-factor recovery codes, stored hashed."""

    __tablename__ = "recovery_code"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="staff_user.id", index=True)
    code_hash: str = Field(max_length=200)
    used_at: datetime | None = _when()


class SetupLink(SQLModel, table=True):
    """A one-time link to set a password (first admin, new user, reset), valid for a day."""

    __tablename__ = "setup_link"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="staff_user.id", index=True)
    token_hash: str = Field(unique=True, max_length=64)  # sha256 hex of the link's secret
    created_at: datetime = _created()
    expires_at: datetime = _created()
    used_at: datetime | None = _when()


class StaffSession(SQLModel, table=True):
    """A browser's signed-in session: the cookie holds a random id, this row its sha256 hash."""

    __tablename__ = "staff_session"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="staff_user.id", index=True)
    id_hash: str = Field(unique=True, max_length=64)
    csrf_token: str = Field(max_length=64)
    second_factor_done: bool = False
    address: str = Field(default="", max_length=64)
    created_at: datetime = _created()
    last_seen_at: datetime = _created()
    ended_at: datetime | None = _when()


class ApiToken(SQLModel, table=True):
    """A user's named API token: `bc_<id>_<secret>` shown once, the secret's sha256 stored."""

    __tablename__ = "api_token"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="staff_user.id", index=True)
    name: str = Field(max_length=80)
    role: str = Field(max_length=16)  # its scope: at most the owner's role, checked at each use
    secret_hash: str = Field(max_length=64)
    created_at: datetime = _created()
    expires_at: datetime | None = _when()
    last_used_at: datetime | None = _when()
    revoked_at: datetime | None = _when()


class LoginFailure(SQLModel, table=True):
    """A failed sign-in, by account key and client address: the throttle counts these."""

    __tablename__ = "login_failure"

    id: int | None = Field(default=None, primary_key=True)
    account_key: str = Field(max_length=64, index=True)  # sha256 of the e-mail typed, known or not
    address: str = Field(max_length=64, index=True)
    at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False, index=True))


class AuditEvent(SQLModel, table=True):
    """One state change, append-only: who (actor), when, from where, on what, in one line."""

    __tablename__ = "audit_event"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False, index=True))
    actor: str = Field(max_length=200, index=True)  # user:<e-mail>, token:<name> (<e-mail>), cli:<unix user>…
    address: str = Field(default="", max_length=64)
    action: str = Field(max_length=64)  # incident.publish, inbox.reply, user.add…
    object: str = Field(max_length=120, index=True)  # incident:12, conversation:4, user:ana@shop.fr…
    summary: str = Field(default="", max_length=300)


class OpenRequest(SQLModel, table=True):
    """An `Idempotency-Key` an incident was opened with, per caller: the same key again opens nothing."""

    __tablename__ = "open_request"
    __table_args__ = (sa.UniqueConstraint("owner", "key", name="uq_open_request_owner_key"),)

    id: int | None = Field(default=None, primary_key=True)
    owner: str = Field(max_length=200)  # who sent it: a user's e-mail, or the CLI's actor
    key: str = Field(max_length=200)
    fingerprint: str = Field(max_length=64)  # sha256 of the request: a key reused for another is refused
    incident_id: int = Field(foreign_key="incident.id", index=True)
    created_at: datetime = _created()
