"""The status bot: answers "is the site down?" and chat commands at once, so agents do not have to.

It runs inside the inbox filer's transaction, on messages just filed:

- a status question gets the live incident state (plain-words status, ETA, next update,
  alternative, link); while no incident is open but customers report a problem (a spike's draft
  waits for the staff, or reports are above half the spike threshold) it says so — several
  customers report a problem, the team is checking — and links the conversation to the draft, so
  the customer is answered when it is published and when it is resolved; otherwise that we know
  of no incident, with the status page. It never denies an outage customers are reporting. At
  most once per conversation per state (`Conversation.bot_answered_state`), so two bots never
  loop, and never once an agent has written in the conversation (`handed_off`: a human reply wins);
- commands `/start`, `/status`, `/help`, `/subscribe [component]`, `/unsubscribe` (`/stop`),
  `/lang fr|en`, and the same intents in plain words ("abonnez-moi", "stop") on every channel;
  subscribing from a chat creates the Subscription for that channel (Telegram: the chat; e-mail:
  the subscriber the reply token belongs to). X and Facebook cannot carry our alerts: the bot
  says where to subscribe instead. An unknown command gets the help.
"""

from __future__ import annotations

import functools
import logging
from datetime import datetime

from sqlalchemy import Connection, insert, select, update

from broadcaster.config import Settings
from broadcaster.delivery.outbox import withdrawal
from broadcaster.delivery.subscribers import subscription_row
from broadcaster.folding import fold
from broadcaster.inbox.answers import BOT, Answer
from broadcaster.inbox.intent import Classification
from broadcaster.inbox.reply_templates import UNREAD, IncidentState, ReplyTemplates, current_incident_sync
from broadcaster.inbox.spikes import SPIKE_INTENTS, Suspicion, outage_suspected_sync
from broadcaster.inbox.thread import Thread
from broadcaster.metrics import Metrics
from broadcaster.models import Subscriber, Subscription, utcnow
from channels.registry import SPECS

log = logging.getLogger(__name__)

#: Channels whose customers can receive our alerts where they wrote to us.
SUBSCRIBABLE = frozenset(name for name, spec in SPECS.items() if spec.answers_alerts)
ALL_IS_WELL = 0  # `bot_answered_state` when the answer was "no incident"
SUSPECTED = -1  # `bot_answered_state` when the answer was "customers report a problem, we check"


Filed = tuple[Thread, Classification]  # a customer message just filed, and what it asks


class StatusBot:
    """Answers filed messages: says what to answer (`answers_to`); the filer writes the answers and
    hands them to delivery."""

    def __init__(self, settings: Settings, metrics: Metrics | None = None) -> None:
        self._settings = settings
        self._metrics = metrics or Metrics()
        self._templates = ReplyTemplates(settings)

    def answers_to(
        self,
        connection: Connection,
        filed: list[Filed],
        now: datetime | None = None,
        latest_open: int | None = UNREAD,
    ) -> list[Answer]:
        """The bot's answers to `filed`, read in the caller's transaction (a subscription asked
        for is written there too); the conversations' states are set on their `Thread`s.

        `latest_open`: the latest open incident's id, when the caller has just read it.
        """
        if not self._settings.inbox.bot_enabled or not filed:
            return []
        with self._metrics.bot_answer_seconds.time():
            return self._answers(connection, filed, now or utcnow(), latest_open)

    def _answers(
        self, connection: Connection, filed: list[Filed], now: datetime, latest_open: int | None
    ) -> list[Answer]:
        answers: list[Answer] = []
        states: dict[int | None, IncidentState | None] = {}
        suspected = functools.cache(lambda: outage_suspected_sync(connection, self._settings, now))
        for thread, found in filed:
            assert thread.id is not None
            if thread.incident_id not in states:
                states[thread.incident_id] = current_incident_sync(
                    connection, thread.incident_id, latest_open
                )
            incident = states[thread.incident_id]
            suspicion = None
            if incident is None and (found.intent in SPIKE_INTENTS or found.command == "/status"):
                suspicion = suspected()  # read once per batch, and only when needed
                if suspicion is not None and suspicion.draft_id is not None:
                    thread.incident_id = suspicion.draft_id  # answered at publication and resolution
            text = self._text_for(connection, thread, found, incident, suspicion, now)
            # The bot's answer settles the customer's latest message; anything else waits for an agent.
            thread.status = "pending" if text is not None else "open"
            if text is not None:
                answers.append(Answer(thread.id, text, self._templates.language(thread.locale), BOT))
        return answers

    def _text_for(
        self,
        connection: Connection,
        thread: Thread,
        found: Classification,
        incident: IncidentState | None,
        suspicion: Suspicion | None,
        now: datetime,
    ) -> str | None:
        if found.command:
            return self._command(connection, thread, found, incident, suspicion, now)
        if found.intent == "subscribe":
            return self._subscribe(connection, thread, "", now)
        if found.intent == "unsubscribe":
            return self._unsubscribe(connection, thread, now)
        asked = found.intent == "status_question" and not thread.handed_off
        if asked and thread.bot_answered_state != _state_of(incident, suspicion):  # once per state
            return self._status(thread, incident, suspicion, now)
        return None

    def _command(
        self,
        connection: Connection,
        thread: Thread,
        found: Classification,
        incident: IncidentState | None,
        suspicion: Suspicion | None,
        now: datetime,
    ) -> str:
        match found.command:
            case "/status":
                return self._status(thread, incident, suspicion, now)
            case "/start":
                return self._render("start", thread, now, incident=incident)
            case "/subscribe":
                return self._subscribe(connection, thread, found.argument, now)
            case "/unsubscribe" | "/stop":
                return self._unsubscribe(connection, thread, now)
            case "/lang" if found.argument in self._settings.brand.locales:
                thread.locale = found.argument
                self._set_subscriber_locale(connection, thread)
                return self._render("language_set", thread, now)
            case "/help" | "/lang":
                return self._render("help", thread, now, unknown="", components=self._components(thread))
            case unknown:
                return self._render("help", thread, now, unknown=unknown, components=self._components(thread))

    def _status(
        self, thread: Thread, incident: IncidentState | None, suspicion: Suspicion | None, now: datetime
    ) -> str:
        thread.bot_answered_state = _state_of(incident, suspicion)
        if incident is not None:
            return self._render("status_incident", thread, now, incident=incident)
        return self._render("status_suspected" if suspicion else "status_ok", thread, now)

    def _render(self, name: str, thread: Thread, now: datetime, **extra: object) -> str:
        incident = extra.pop("incident", None)
        assert incident is None or isinstance(incident, IncidentState)
        return self._templates.render(
            name, thread.locale, incident=incident, now=now, customer_name=thread.name, **extra
        )

    def _components(self, thread: Thread) -> str:
        language = self._templates.language(thread.locale)
        return ", ".join(self._settings.component_label(c, language) for c in self._settings.components)

    def _component_named(self, argument: str) -> str | None:
        """`/subscribe paiement` → "payment": a component by its name or its label in any language."""
        wanted = fold(argument).text
        for name, component in self._settings.components.items():
            if wanted == fold(name).text or wanted in {
                fold(label).text for label in component.label.values()
            }:
                return name
        return None

    def _subscription(self, connection: Connection, thread: Thread) -> Subscription | None:
        table = Subscription.__table__  # type: ignore[attr-defined]
        if thread.channel == "email":  # the conversation key is the subscription's reply token
            where = table.c.reply_token == thread.key
        else:
            where = (table.c.channel == thread.channel) & (table.c.address == thread.key)
        row = (connection.execute(select(table).where(where).limit(1))).first()
        return Subscription.model_validate(row._mapping) if row is not None else None

    def _subscribe(self, connection: Connection, thread: Thread, argument: str, now: datetime) -> str:
        if thread.channel not in SUBSCRIBABLE:
            return self._render("subscribe_elsewhere", thread, now)
        components: list[str] = []
        if argument:
            component = self._component_named(argument)
            if component is None:
                return self._render("unknown_component", thread, now, service=argument,
                                    components=self._components(thread))  # fmt: skip
            components = [component]
        table = Subscription.__table__  # type: ignore[attr-defined]
        existing = self._subscription(connection, thread)
        if existing is not None:
            connection.execute(
                update(table)
                .where(table.c.id == existing.id)
                .values(active=True, components=components, deactivated_reason="", deactivated_at=None)
            )
        elif thread.channel == "telegram":
            subscriber_id = (
                connection.execute(
                    insert(Subscriber.__table__).returning(Subscriber.__table__.c.id),  # type: ignore[attr-defined]
                    {
                        "name": thread.name,
                        "locale": self._templates.language(thread.locale),
                        "created_at": now,
                    },
                )  # fmt: skip
            ).scalar_one()
            connection.execute(
                insert(table), subscription_row(subscriber_id, "telegram", thread.key, components)
            )
        else:  # an e-mail conversation always comes from a subscription; it was deleted meanwhile
            return self._render("subscribe_elsewhere", thread, now)
        language = self._templates.language(thread.locale)
        labels = ", ".join(self._settings.component_label(c, language) for c in components)
        return self._render("subscribed", thread, now, components=labels)

    def _unsubscribe(self, connection: Connection, thread: Thread, now: datetime) -> str:
        existing = self._subscription(connection, thread) if thread.channel in SUBSCRIBABLE else None
        if existing is None or not existing.active:
            return self._render("not_subscribed", thread, now)
        table = Subscription.__table__  # type: ignore[attr-defined]
        connection.execute(
            update(table)
            .where(table.c.id == existing.id)
            .values(active=False, deactivated_reason="unsubscribed from a chat", deactivated_at=now)
        )
        connection.execute(withdrawal([existing.id], "unsubscribed from a chat"))
        return self._render("unsubscribed", thread, now)

    def _set_subscriber_locale(self, connection: Connection, thread: Thread) -> None:
        existing = self._subscription(connection, thread) if thread.channel in SUBSCRIBABLE else None
        if existing is not None:
            subscribers = Subscriber.__table__  # type: ignore[attr-defined]
            connection.execute(
                update(subscribers)
                .where(subscribers.c.id == existing.subscriber_id)
                .values(locale=thread.locale)
            )


def _state_of(incident: IncidentState | None, suspicion: Suspicion | None) -> int:
    """What a status answer is about: the incident's latest update, a suspected outage, or "all is well"."""
    if incident is not None:
        return incident.latest_update_id
    return SUSPECTED if suspicion is not None else ALL_IS_WELL
