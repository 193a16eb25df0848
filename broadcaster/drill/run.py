"""`broadcaster drill`: the fire drill — a TEST message on every live channel, to our own test audience.

    report = await run_drill(settings, sessions, public=False, wait=True, by="camille")
    report.ok  # False when a channel failed; report.results says which and how to fix it

The message goes through the real adapters (`build_channels`, as the worker builds them) straight
to `[drill]`'s addresses: no incident, no update, no outbox row, so a drill never shows in the
history, the public pages, subscribers' deliveries or the broadcast metrics. Public channels (X,
Facebook, the blog) only with `public`. Then the round trips (`broadcaster.drill.checks`): a reply
to the drill e-mail recorded by the inbound path, getWebhookInfo, the bot's answer to `/status`.
The run is one `DrillRun` row, created first (its reply token must exist before the e-mail
leaves) and completed at the end; `broadcaster doctor` reads the latest (`last_drill`).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlmodel import col, select

from broadcaster.config import Settings
from broadcaster.db import SessionFactory, writing
from broadcaster.delivery.audience import PUBLIC_TARGETS
from broadcaster.delivery.runtimes import ChannelRuntime, open_channels
from broadcaster.drill.checks import FAILED, OK, SKIPPED, ChannelResult, round_trips
from broadcaster.drill.message import drill_message
from broadcaster.drill.reply import DRILL_UPDATE_ID
from broadcaster.models import DrillRun, utcnow
from channels.base import DeliveryError, RateLimited, Rejected, SendResult, Target, Unauthorized
from channels.registry import CHANNEL_NAMES, SPECS

__all__ = [
    "FAILED",
    "OK",
    "PUBLIC_CHANNELS",
    "SKIPPED",
    "ChannelResult",
    "DrillReport",
    "last_drill",
    "run_drill",
]

#: Channels everybody sees: a drill posts there only when asked (`--public`).
PUBLIC_CHANNELS = tuple(name for name, spec in SPECS.items() if spec.seen_by_everybody)
SEND_TIMEOUT = 30.0

Progress = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class DrillReport:
    drill_id: int
    started_at: datetime
    finished_at: datetime
    by: str
    results: list[ChannelResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(r.status != FAILED for r in self.results)

    def as_dict(self) -> dict[str, object]:
        return {
            "drill_id": self.drill_id,
            "ok": self.ok,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat(),
            "by": self.by,
            "results": [r.as_dict() for r in self.results],
        }


def _audience(name: str, settings: Settings, public: bool) -> list[str]:
    """Who gets the TEST message on `name`: the test audience, or a public channel's one post
    (with `public`, the Telegram channel of `channels.telegram.channel_id` too)."""
    drill = settings.drill
    if name == "email":
        return list(drill.email_addresses)
    if name == "telegram":
        chats = [drill.telegram_chat_id] if drill.telegram_chat_id else []
        channel = settings.channels.telegram.channel_id.strip()
        return chats + [channel] if public and channel and chats else chats
    if name == "push":
        return [drill.push_device] if drill.push_device else []
    if SPECS[name].subscribers:
        return list(drill.audience.get(name, ()))
    return [PUBLIC_TARGETS[name]]


def _audience_key(name: str) -> str:
    """The setting naming `name`'s test audience (a public channel's is the channel's own)."""
    spec = SPECS[name]
    if spec.drill_audience:
        return spec.drill_audience
    return f"drill.audience.{name}" if spec.subscribers else f"channels.{name}"


def _targets(name: str, settings: Settings, token: str, public: bool) -> list[Target]:
    locale = settings.brand.default_locale
    reply = f"{DRILL_UPDATE_ID}.{token}" if name == "email" else ""  # Reply-To: reply+0.<token>@…
    return [Target(address, locale, reply_token=reply) for address in _audience(name, settings, public)]


def _capture_fix(name: str, settings: Settings) -> str:
    if getattr(settings.channels, name).capture:
        return f"capture mode is on: set channels.{name}.capture = false to go live"
    return (
        f"capture mode (no credentials): set {SPECS[name].go_live} to go live, "
        f"or channels.{name}.enabled = false if you do not use it"
    )


def _refusal(name: str, exc: DeliveryError) -> tuple[str, str]:
    """What a refused TEST message says, and the fix."""
    match exc:
        case Unauthorized():
            return f"credentials refused: {exc.reason}", f"fix channels.{name} (see `broadcaster doctor`)"
        case RateLimited():
            return f"rate limited: {exc.reason}", f"run the drill again in {exc.retry_after:g} s"
        case Rejected():
            key = _audience_key(name)
            return f"refused: {exc.reason}", f"check {key}: the provider refused the test audience"
    return (
        f"unreachable: {exc.reason}",
        f"check channels.{name} and the provider's status (`broadcaster doctor`), then drill again",
    )


async def _send_all(
    name: str, runtime: ChannelRuntime, settings: Settings, run: DrillRun, public: bool, started: float
) -> ChannelResult:
    """Send the TEST message to each target of `name`; ok only when the provider accepted every one."""
    targets = _targets(name, settings, run.reply_token, public)
    message = drill_message(name, settings.brand.name, settings.brand.default_locale)
    ids: list[str] = []
    first: float | None = None
    for number, target in enumerate(targets):
        key = f"drill:{run.id}:{name}:{number}"  # no address in it: a Web Push one holds keys
        try:
            result: SendResult = await asyncio.wait_for(
                runtime.channel.send(message, target, idempotency_key=key), SEND_TIMEOUT
            )
        except TimeoutError:
            detail, fix = f"no answer within {SEND_TIMEOUT:g} s", f"check channels.{name} and the network"
        except DeliveryError as exc:
            detail, fix = _refusal(name, exc)
        except Exception as exc:  # an adapter bug: this channel's row says so, the others go on
            detail, fix = f"internal error: {type(exc).__name__}", "see the log; report it"
        else:
            first = first if first is not None else time.monotonic() - started
            ids.append(result.provider_message_id)
            continue
        return ChannelResult(name, FAILED, detail, fix, tuple(ids), first)
    accepted = f"provider accepted {len(targets)} TEST message(s)"
    return ChannelResult(name, OK, accepted, "", tuple(ids), first)


def _before_sending(
    name: str, settings: Settings, runtime: ChannelRuntime | None, public: bool
) -> ChannelResult | None:
    """Why `name` is not sent to at all (disabled, public, capture mode, no audience), or None."""
    if runtime is None:
        return ChannelResult(name, SKIPPED, f"disabled (channels.{name}.enabled = false)")
    if name in PUBLIC_CHANNELS and not public:
        return ChannelResult(name, SKIPPED, "skipped (public: use --public)")
    if not runtime.live:
        return ChannelResult(
            name, FAILED, "capture mode: nothing would leave the machine", _capture_fix(name, settings)
        )
    if not _audience(name, settings, public):
        key = _audience_key(name)
        return ChannelResult(name, FAILED, f"no test audience: set {key}", f"set {key} in the config file")
    return None


async def run_drill(
    settings: Settings,
    sessions: SessionFactory,
    *,
    public: bool = False,
    wait: bool = True,
    by: str = "",
    progress: Progress | None = None,
) -> DrillReport:
    """Send the TEST message on every live channel, check the round trips, store and return the result."""
    say = progress or (lambda _: None)
    token = secrets.token_hex(16)
    async with sessions() as session, writing(session):
        run = DrillRun(by=by[:120], reply_token=token)
        session.add(run)
        await session.commit()
    assert run.id is not None
    started = time.monotonic()
    results: list[ChannelResult] = []
    async with open_channels(settings, sessions) as runtimes:
        sending: dict[str, asyncio.Task[ChannelResult]] = {}
        for name in CHANNEL_NAMES:
            runtime = runtimes.get(name)
            early = _before_sending(name, settings, runtime, public)
            if early is not None:
                results.append(early)
            elif runtime is not None:
                sending[name] = asyncio.create_task(_send_all(name, runtime, settings, run, public, started))
        say(f"sending the TEST message on {', '.join(sending) or 'no channel'}")
        sent = {name: await task for name, task in sending.items()}
        results += sent.values()
        accepted = {name for name, result in sent.items() if result.status == OK}
        results += await round_trips(settings, sessions, runtimes, run, accepted, wait=wait, progress=say)
    results.sort(key=lambda r: CHANNEL_NAMES.index(r.channel.split(" ")[0]))
    return await _finish(sessions, run.id, results)


async def _finish(sessions: SessionFactory, drill_id: int, results: Sequence[ChannelResult]) -> DrillReport:
    async with sessions() as session, writing(session):
        run = await session.get(DrillRun, drill_id)
        assert run is not None
        run.finished_at = utcnow()
        run.results = [r.as_dict() for r in results]
        run.ok = all(r.status != FAILED for r in results)
        session.add(run)
        await session.commit()
        assert run.finished_at is not None
        return DrillReport(drill_id, run.started_at, run.finished_at, run.by, list(results))


def _ago(seconds: float) -> str:
    """ "just now", "5 minutes ago", "3 days ago"."""
    for unit, size in (("day", 86_400), ("hour", 3_600), ("minute", 60)):
        if seconds >= size:
            count = int(seconds // size)
            return f"{count} {unit}{'s' if count > 1 else ''} ago"
    return "just now"


async def last_drill(sessions: SessionFactory, now: datetime | None = None) -> tuple[bool, str]:
    """For `doctor`: (all ok, "last drill: 3 days ago, all ok" / "…, failed: email, push" / "never…")."""
    async with sessions() as session:
        found = await session.exec(
            select(DrillRun)
            .where(col(DrillRun.finished_at).is_not(None))
            .order_by(col(DrillRun.id).desc())
            .limit(1)
        )
        run = found.first()
    if run is None or run.finished_at is None:
        return False, "never: run `broadcaster drill`"
    age = _ago(max(0.0, ((now or utcnow()) - run.finished_at).total_seconds()))
    failed = list(dict.fromkeys(str(r.get("channel", "?")) for r in run.results if r.get("status") == FAILED))
    if not failed:
        return True, f"{age}, all ok"
    return False, f"{age}, failed: {', '.join(failed)}"
