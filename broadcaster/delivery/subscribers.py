"""Add and import subscribers. A CSV import checks every line first and writes nothing if one is bad."""

from __future__ import annotations

import csv
import io
import re
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import insert
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from broadcaster.config import Settings
from broadcaster.errors import InvalidInput
from broadcaster.models import Subscriber, Subscription, utcnow
from channels.base import Rejected
from channels.push.webpush import endpoint_policy, parse_subscription

__all__ = [
    "CSV_COLUMNS",
    "ImportError_",
    "ImportReport",
    "NewSubscriber",
    "import_subscribers",
    "parse_csv",
    "subscription_row",
    "validate",
]

CSV_COLUMNS = ("email", "telegram_chat_id", "locale", "components")
_CHAT_ID = re.compile(r"-?[0-9]{1,20}")  # ASCII: int() would also read "١٢٣"
_LOCALE = re.compile(r"^[a-z]{2}([_-][A-Za-z]{2})?$")


class ImportError_(InvalidInput):
    """Every bad line of a CSV file, one per entry; nothing was imported."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__(f"{len(problems)} bad line(s), nothing imported:\n" + "\n".join(problems))
        self.problems = list(problems)


@dataclass(frozen=True, slots=True)
class NewSubscriber:
    email: str = ""
    telegram_chat_id: str = ""
    locale: str = "fr"
    components: tuple[str, ...] = ()
    name: str = ""
    line: int = 0
    push: str = ""  # "fcm:<registration token>" or "webpush:<PushSubscription JSON>"


@dataclass
class ImportReport:
    subscribers: int = 0
    subscriptions: int = 0
    already_subscribed: int = 0
    problems: list[str] = field(default_factory=list)


def validate(entry: NewSubscriber, settings: Settings) -> tuple[NewSubscriber, list[str]]:
    """Normalise one entry; return it with the list of what is wrong (empty when fine)."""
    problems = []
    email = entry.email.strip()
    if email:
        try:
            email = validate_email(email, check_deliverability=False).normalized
        except EmailNotValidError as exc:
            problems.append(f"email {entry.email!r}: {exc}")
    chat = entry.telegram_chat_id.strip()
    if chat and not _CHAT_ID.fullmatch(chat):
        problems.append(f"telegram_chat_id {chat!r}: must be a number (the chat id the bot sees)")
    push = entry.push.strip()
    if push:
        problems.extend(_push_problems(push, settings))
    if not email and not chat and not push:
        problems.append("needs an email, a telegram_chat_id or a push address")
    locale = entry.locale.strip() or settings.brand.default_locale
    if not _LOCALE.match(locale):
        problems.append(f"locale {locale!r}: use a code like fr, en or fr_CA")
    unknown = [c for c in entry.components if c not in settings.components]
    if unknown:
        problems.append(
            f"unknown component(s) {', '.join(unknown)} (known: {', '.join(settings.components)})"
        )
    cleaned = NewSubscriber(email, chat, locale, entry.components, entry.name.strip(), entry.line, push)
    return cleaned, problems


def _push_problems(push: str, settings: Settings) -> list[str]:
    kind, _, value = push.partition(":")
    if kind == "fcm" and value.strip():
        return []
    if kind == "webpush":
        try:
            parse_subscription(value, endpoint_policy(settings.channels.push))
        except Rejected as exc:
            return [f"push webpush:…: {exc.reason}"]
        return []
    return [f"push {push[:40]!r}: write fcm:<registration token> or webpush:<subscription JSON>"]


def parse_csv(text: str) -> tuple[list[NewSubscriber], list[str]]:
    """Read `email,telegram_chat_id,locale,components` rows (components separated by ';' or '|')."""
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in reader.fieldnames or []]
    missing = [c for c in ("email", "telegram_chat_id") if c not in header]
    if missing:
        return [], [f"line 1: header must include {', '.join(CSV_COLUMNS)} (missing: {', '.join(missing)})"]
    extra = [h for h in header if h not in (*CSV_COLUMNS, "name", "push")]
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
                values.get("email", ""),
                values.get("telegram_chat_id", ""),
                values.get("locale", ""),
                components,
                values.get("name", ""),
                line,
                values.get("push", ""),
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
        for key in (
            ("email", entry.email.lower()),
            ("telegram", entry.telegram_chat_id),
            ("push", entry.push),
        ):
            if key[1] and key in seen:
                entry_problems.append(f"{key[0]} {key[1]!r} already on line {seen[key]}")
            elif key[1]:
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
    await session.commit()
    return report


def _addresses(entry: NewSubscriber) -> list[tuple[str, str]]:
    """The (channel, address) pairs an entry subscribes."""
    addresses = (("email", entry.email), ("telegram", entry.telegram_chat_id), ("push", entry.push))
    return [(c, a) for c, a in addresses if a]


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
