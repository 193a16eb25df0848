"""Add and import subscribers. A CSV import checks every line first and writes nothing if one is bad."""

from __future__ import annotations

import csv
import io
import re
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from sqlalchemy import insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from broadcaster.auth.audit import record
from broadcaster.config import Settings
from broadcaster.errors import InvalidInput
from broadcaster.models import Subscriber, Subscription, utcnow
from channels.registry import SPECS

__all__ = [
    "ADDRESS_COLUMNS",
    "CSV_COLUMNS",
    "ImportError_",
    "ImportReport",
    "NewSubscriber",
    "import_subscribers",
    "parse_csv",
    "subscription_row",
    "validate",
]

#: The column of each channel people subscribe on ("email", "telegram_chat_id", "push"), by channel.
ADDRESS_COLUMNS: Mapping[str, str] = {
    name: spec.subscriber_column for name, spec in SPECS.items() if spec.subscriber_column
}
_CHANNEL_OF_COLUMN = {column: name for name, column in ADDRESS_COLUMNS.items()}
#: A subscribers CSV: one address column per channel (any of them), then these.
CSV_COLUMNS = (*ADDRESS_COLUMNS.values(), "locale", "components")
_LOCALE = re.compile(r"^[a-z]{2}([_-][A-Za-z]{2})?$")


class ImportError_(InvalidInput):
    """Every bad line of a CSV file, one per entry; nothing was imported."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__(f"{len(problems)} bad line(s), nothing imported:\n" + "\n".join(problems))
        self.problems = list(problems)


@dataclass(frozen=True, slots=True, init=False)
class NewSubscriber:
    """One person to subscribe: an address on each channel they chose, by channel.

        NewSubscriber(email="claire@example.com", telegram_chat_id="12345", locale="fr", line=2)
        NewSubscriber(addresses={"email": "claire@example.com"})

    Keyword addresses are named by their CSV column (`ADDRESS_COLUMNS`), and read back the same
    way (`entry.email`: "" when there is none).
    """

    addresses: Mapping[str, str]
    locale: str
    components: tuple[str, ...]
    name: str
    line: int

    def __init__(
        self,
        *,
        addresses: Mapping[str, str] | None = None,
        locale: str = "fr",
        components: Sequence[str] = (),
        name: str = "",
        line: int = 0,
        **columns: str,
    ) -> None:
        found = dict(addresses or {})
        for column, address in columns.items():
            if column not in _CHANNEL_OF_COLUMN:
                known = ", ".join(ADDRESS_COLUMNS.values())
                raise TypeError(f"no channel takes subscribers by {column!r} (columns: {known})")
            if address:
                found[_CHANNEL_OF_COLUMN[column]] = address
        object.__setattr__(self, "addresses", found)
        object.__setattr__(self, "locale", locale)
        object.__setattr__(self, "components", tuple(components))
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "line", line)

    def __getattr__(self, column: str) -> str:
        if column not in _CHANNEL_OF_COLUMN:
            raise AttributeError(column)
        return self.addresses.get(_CHANNEL_OF_COLUMN[column], "")


@dataclass
class ImportReport:
    subscribers: int = 0
    subscriptions: int = 0
    already_subscribed: int = 0
    problems: list[str] = field(default_factory=list)


def validate(entry: NewSubscriber, settings: Settings) -> tuple[NewSubscriber, list[str]]:
    """Normalise one entry; return it with the list of what is wrong (empty when fine)."""
    problems = []
    addresses: dict[str, str] = {}
    for channel, raw in entry.addresses.items():
        address = raw.strip()
        if not address:
            continue
        check = SPECS[channel].check_address
        if check is not None:
            address, problem = check(address, settings.channels.section(channel))
            if problem:
                problems.append(problem)
        addresses[channel] = address
    if not addresses:
        problems.append(f"needs an address: {' or '.join(ADDRESS_COLUMNS.values())}")
    locale = entry.locale.strip() or settings.brand.default_locale
    if not _LOCALE.match(locale):
        problems.append(f"locale {locale!r}: use a code like fr, en or fr_CA")
    unknown = [c for c in entry.components if c not in settings.components]
    if unknown:
        problems.append(
            f"unknown component(s) {', '.join(unknown)} (known: {', '.join(settings.components)})"
        )
    cleaned = NewSubscriber(
        addresses=addresses,
        locale=locale,
        components=entry.components,
        name=entry.name.strip(),
        line=entry.line,
    )
    return cleaned, problems


def parse_csv(text: str) -> tuple[list[NewSubscriber], list[str]]:
    """Read `email,telegram_chat_id,locale,components` rows (components separated by ';' or '|')."""
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in reader.fieldnames or []]
    columns = list(ADDRESS_COLUMNS.values())
    if not any(c in header for c in columns):
        return [], [
            f"line 1: header must include {' or '.join(columns)} (and may have locale, components, name)"
        ]
    extra = [h for h in header if h not in (*CSV_COLUMNS, "name")]
    if extra:
        return [], [f"line 1: unknown column(s) {', '.join(extra)} (expected {', '.join(CSV_COLUMNS)}, name)"]
    entries, problems = [], []
    for row in reader:
        line = reader.line_num
        if None in row:
            problems.append(f"line {line}: more fields than the header has")
            continue
        values = {k.strip(): (v or "") for k, v in row.items() if k}
        components = tuple(c.strip() for c in re.split(r"[;|]", values.get("components", "")) if c.strip())
        entries.append(
            NewSubscriber(
                addresses={channel: values.get(column, "") for channel, column in ADDRESS_COLUMNS.items()},
                locale=values.get("locale", ""),
                components=components,
                name=values.get("name", ""),
                line=line,
            )
        )
    return entries, problems


async def import_subscribers(
    session: AsyncSession,
    settings: Settings,
    entries: Sequence[NewSubscriber],
    on_progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Validate all entries, then write them in one transaction; raise `ImportError_` if any is bad."""
    problems: list[str] = []
    cleaned: list[NewSubscriber] = []
    seen: dict[tuple[str, str], int] = {}
    for entry in entries:
        entry, entry_problems = validate(entry, settings)
        for channel, address in entry.addresses.items():
            key = (channel, address.lower() if SPECS[channel].addresses_ignore_case else address)
            if key in seen:
                entry_problems.append(f"{ADDRESS_COLUMNS[channel]} {address!r} already on line {seen[key]}")
            else:
                seen[key] = entry.line
        problems.extend(f"line {entry.line}: {p}" for p in entry_problems)
        cleaned.append(entry)
    if problems:
        raise ImportError_(problems)
    existing = await _subscribed(session, [pair for entry in cleaned for pair in _addresses(entry)])
    report = ImportReport()
    pending: list[tuple[NewSubscriber, list[tuple[str, str]]]] = []
    for entry in cleaned:
        wanted = _addresses(entry)
        fresh = [(c, a) for c, a in wanted if (c, a) not in existing]
        report.already_subscribed += len(wanted) - len(fresh)
        if fresh:
            pending.append((entry, fresh))
            existing.update(fresh)
    for start in range(0, len(pending), 1000):
        chunk = pending[start : start + 1000]
        result = await (await session.connection()).execute(
            insert(Subscriber).returning(col(Subscriber.id), sort_by_parameter_order=True),
            [{"name": e.name, "locale": e.locale, "created_at": utcnow()} for e, _ in chunk],
        )
        ids = list(result.scalars())
        rows = [
            subscription_row(subscriber_id, channel, address, entry.components)
            for subscriber_id, (entry, fresh) in zip(ids, chunk, strict=True)
            for channel, address in fresh
        ]
        await (await session.connection()).execute(insert(Subscription), rows)
        report.subscribers += len(chunk)
        report.subscriptions += len(rows)
        if on_progress:
            on_progress(start + len(chunk))
    summary = f"{report.subscribers} subscribers, {report.subscriptions} subscriptions"
    record(
        session, "subscribers.import", "subscribers", f"{summary}, {report.already_subscribed} already there"
    )
    await session.commit()
    return report


def _addresses(entry: NewSubscriber) -> list[tuple[str, str]]:
    """The (channel, address) pairs an entry subscribes."""
    return [(c, a) for c, a in entry.addresses.items() if a]


async def _subscribed(session: AsyncSession, pairs: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
    """Which of these (channel, address) pairs already have a subscription: the import's own
    addresses are looked up, not every subscription read."""
    by_channel: dict[str, list[str]] = {}
    for channel, address in pairs:
        by_channel.setdefault(channel, []).append(address)
    found: set[tuple[str, str]] = set()
    for channel, addresses in by_channel.items():
        for start in range(0, len(addresses), 5000):  # within every database's bind limit
            statement = select(Subscription.address).where(
                col(Subscription.channel) == channel,
                col(Subscription.address).in_(addresses[start : start + 5000]),
            )
            found.update((channel, address) for address in await session.exec(statement))
    return found


def subscription_row(
    subscriber_id: int | None, channel: str, address: str, components: Sequence[str]
) -> dict[str, object]:
    return {
        "subscriber_id": subscriber_id,
        "channel": channel,
        "address": address,
        "components": list(components),
        "confirmed": True,
        "active": True,
        "unsubscribe_token": secrets.token_urlsafe(24),
        "reply_token": secrets.token_hex(8),
        "deactivated_reason": "",
        "created_at": utcnow(),
    }
