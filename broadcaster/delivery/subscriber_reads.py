"""Subscribers as the staff look them up: search by address or name, page by id, export as the CSV
that `subscribers import` reads back. Shared by the CLI, the API and the console."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence

from sqlmodel import col, or_, select

from broadcaster.db import SessionFactory
from broadcaster.delivery.subscribers import ADDRESS_COLUMNS, CSV_COLUMNS
from broadcaster.models import Subscriber, Subscription

__all__ = ["export_csv", "find_subscriptions", "subscription_dict"]


async def find_subscriptions(
    sessions: SessionFactory,
    *,
    search: str = "",
    channel: str | None = None,
    active: bool | None = None,
    after_id: int = 0,
    limit: int = 100,
) -> list[tuple[Subscription, Subscriber]]:
    """Subscriptions by id after `after_id` (the next page starts after the last id shown);
    `search` matches a part of the address or of the subscriber's name, ignoring case."""
    statement = (
        select(Subscription, Subscriber)
        .join(Subscriber, col(Subscriber.id) == col(Subscription.subscriber_id))
        .where(col(Subscription.id) > after_id)
        .order_by(col(Subscription.id))
        .limit(limit)
    )
    if search.strip():
        needle = search.strip()
        statement = statement.where(
            or_(
                col(Subscription.address).icontains(needle, autoescape=True),
                col(Subscriber.name).icontains(needle, autoescape=True),
            )
        )
    if channel is not None:
        statement = statement.where(Subscription.channel == channel)
    if active is not None:
        statement = statement.where(Subscription.active == active)
    async with sessions() as session:
        return [(s, p) for s, p in await session.exec(statement)]


def subscription_dict(s: Subscription, p: Subscriber) -> dict[str, object]:
    return {
        "id": s.id,
        "subscriber_id": p.id,
        "name": p.name,
        "channel": s.channel,
        "address": s.address,
        "locale": p.locale,
        "components": s.components,
        "active": s.active,
        "deactivated_reason": s.deactivated_reason,
        "created_at": s.created_at.isoformat(),
    }


def _rows(pairs: Sequence[tuple[Subscription, Subscriber]]) -> dict[int, dict[str, str]]:
    people: dict[int, dict[str, str]] = {}
    for s, p in pairs:
        assert p.id is not None
        row = people.setdefault(
            p.id, {"name": p.name, "locale": p.locale, "components": ";".join(s.components)}
        )
        column = ADDRESS_COLUMNS.get(s.channel)
        if column and not row.get(column):
            row[column] = s.address
    return people


async def export_csv(sessions: SessionFactory) -> str:
    """Every active subscriber, one line each, with the columns `subscribers import` reads."""
    statement = (
        select(Subscription, Subscriber)
        .join(Subscriber, col(Subscriber.id) == col(Subscription.subscriber_id))
        .where(col(Subscription.active))
        .order_by(col(Subscriber.id), col(Subscription.id))
    )
    async with sessions() as session:
        people = _rows(list(await session.exec(statement)))
    out = io.StringIO()
    writer = csv.DictWriter(
        out, fieldnames=[*CSV_COLUMNS, "name"], extrasaction="ignore", lineterminator="\n"
    )
    writer.writeheader()
    for row in people.values():
        writer.writerow({name: _safe_cell(row.get(name, "")) for name in (*CSV_COLUMNS, "name")})
    return out.getvalue()


def _safe_cell(value: str) -> str:
    """A cell a spreadsheet will not run: a leading = + - @ (CSV injection) is quoted with '."""
    return f"'{value}" if value[:1] in ("=", "+", "-", "@") and not value[1:2].isdigit() else value
