"""Prometheus metrics of one app (or one `broadcaster worker`), each in its own registry.

Counters count what this process did; the queue depth is read from the outbox at scrape time
(one grouped query), so every node reports the same shared queue. No label ever holds a
customer's address or text: the labels are channel names and fixed outcome words.

    metrics = Metrics()
    metrics.deliveries.labels("email", "sent").inc()
    text = await metrics.scrape(sessions)
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST as CONTENT_TYPE
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from sqlalchemy import func
from sqlmodel import col, select

from broadcaster.db import SessionFactory
from broadcaster.delivery import outbox
from broadcaster.models import Delivery

__all__ = ["CONTENT_TYPE", "OUTCOMES", "Metrics"]

#: Delivery outcomes as counted: the outbox's final states, and "retry" for a try that will be repeated.
OUTCOMES = {
    outbox.SENT: "sent",
    outbox.CAPTURED: "captured",
    outbox.FAILED: "failed",
    outbox.DEAD: "dead",
    outbox.PENDING: "retry",
}
_QUEUED = (outbox.PENDING, outbox.SENDING)
# Send latencies span a fast SMTP relay (ms) to a slow Graph API call (s).
_SEND_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    """The counters, histograms and gauges the dispatcher, the inbox and the bot update."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.deliveries = Counter(
            "broadcaster_deliveries",
            "Delivery attempts by outcome: sent, captured, failed (refused for good), dead, retry, deferred.",
            ["channel", "outcome"],
            registry=self.registry,
        )
        self.rate_limited = Counter(
            "broadcaster_rate_limited",
            "Sends a provider refused with a rate limit (HTTP 429, retry_after).",
            ["channel"],
            registry=self.registry,
        )
        self.send_seconds = Histogram(
            "broadcaster_send_seconds",
            "Time of one provider call that sent a message.",
            ["channel"],
            buckets=_SEND_BUCKETS,
            registry=self.registry,
        )
        self.queue = Gauge(
            "broadcaster_queue_depth",
            "Outbox rows waiting (pending) or being sent (sending), read from the database at scrape time.",
            ["channel", "status"],
            registry=self.registry,
        )
        self.bot_answer_seconds = Histogram(
            "broadcaster_bot_answer_seconds",
            "Time the status bot took to choose and queue its answers to one filed batch.",
            registry=self.registry,
        )
        self.inbound_filed = Counter(
            "broadcaster_inbound_filed",
            "Customer messages filed into the inbox (rate() gives filed per second).",
            registry=self.registry,
        )
        self.breaker_open = Gauge(
            "broadcaster_breaker_open",
            "1 while a channel's circuit breaker is open (its provider unreachable: one probe per interval).",
            ["channel"],
            registry=self.registry,
        )

    async def scrape(self, sessions: SessionFactory) -> bytes:
        """The exposition text, with the queue depth read now."""
        statement = (
            select(col(Delivery.channel), col(Delivery.status), func.count())
            .where(col(Delivery.status).in_(_QUEUED))
            .group_by(col(Delivery.channel), col(Delivery.status))
        )
        async with sessions() as session:
            rows = list(await session.exec(statement))
        self.queue.clear()
        for channel in {channel for channel, _status, _count in rows}:
            for status in _QUEUED:
                self.queue.labels(channel, status).set(0)
        for channel, status, count in rows:
            self.queue.labels(channel, status).set(count)
        return generate_latest(self.registry)
