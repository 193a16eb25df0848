"""Fan-out benchmark: N e-mail + N Telegram subscribers against local peers, rate limits lifted.

Prints, per scenario: the time to persist the update's deliveries (one transaction), msg/s per
channel (each channel alone, then both at once), whether the peers received every message, and
the broadcaster process's peak RSS. Each scenario runs in a fresh process (so peak RSS is its
own) and each peer in another one (so the figure does not measure the peer on our GIL).

    .venv/bin/python bench/fanout.py               # 10,000 + 10,000, both scenarios
    .venv/bin/python bench/fanout.py --count 1000 --json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import resource
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # run as a script: `python bench/fanout.py` from anywhere

from bench.peers import TELEGRAM_TOKEN, PeerKind, PeerProcess  # noqa: E402

Result = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Scenario:
    """Peer latencies, client parallelism and the issue's targets (None: no target stated)."""

    name: str
    smtp_latency: float
    telegram_latency: float
    email_target: float | None
    telegram_target: float | None
    persist_target: float = 2.0
    pool_size: int = 32
    concurrency: int = 64
    smtp_peer: PeerKind = "smtp-fast"  # or "smtp": the test suite's SmtpPeer, which parses every message


#: Subscribers per import (one file of `broadcaster subscribers import`).
IMPORT_CHUNK = 10_000

SCENARIOS = (
    Scenario("no latency", 0.0, 0.0, email_target=800, telegram_target=None),
    Scenario("latency: SMTP 20 ms/reply, Bot API 50 ms", 0.02, 0.05, email_target=300, telegram_target=600),
)


def _settings(url: str, smtp: PeerProcess, telegram: PeerProcess, sc: Scenario) -> Any:
    from broadcaster.config import parse_settings

    email = dict(host="127.0.0.1", port=smtp.port, security="none", pool_size=sc.pool_size, rate_per_second=0)
    bot = dict(token=TELEGRAM_TOKEN, base_url=telegram.url, concurrency=sc.concurrency)
    bot |= dict(rate_per_second=0, per_chat_interval_seconds=0)  # limits lifted: our own ceiling
    off = {"enabled": False}  # only the two subscriber channels are measured
    channels = dict(email=email, telegram=bot, twitter=off, facebook=off, push=off, blog=off)
    brand = {"name": "Maison Exemple", "alternative": {"fr": "Commandes au 01 23 45 67 89"}}
    dispatch = {"batch_size": 1000, "poll_interval_seconds": 0.05}
    data = dict(brand=brand, database={"url": url}, dispatch=dispatch, channels=channels)
    return parse_settings(data, "bench/fanout.py")


def _draft(now: Any) -> Any:
    from broadcaster.publishing.incidents import UpdateDraft

    return UpdateDraft(
        status="investigating",
        message="Notre site ne répond plus depuis 14 h. Nous sommes désolés : nos équipes sont dessus.",
        translations={"en": "Our site has been down since 2 PM. We are sorry: our team is on it."},
        eta_at=now + timedelta(hours=1),
        next_update_at=now + timedelta(minutes=30),
        alternative="Commandes par téléphone au 01 23 45 67 89",
        author="bench",
    )


async def _publish(sessions: Any, settings: Any, title: str) -> tuple[int, float, dict[str, int]]:
    """Open an incident; return (update id, seconds for the whole publish transaction, rows per channel)."""
    from broadcaster.compose.render import Composer
    from broadcaster.models import utcnow
    from broadcaster.publishing.incidents import open_incident

    composer = Composer(None, default_locale=settings.brand.default_locale)
    draft = _draft(utcnow())
    async with sessions() as session:
        started = time.perf_counter()
        components = ["website", "checkout"]
        published = await open_incident(
            session,
            settings,
            composer,
            title=title,
            impact="critical",
            components=components,
            draft=draft,
            force=True,
        )
        elapsed = time.perf_counter() - started
    assert published.update.id is not None
    return published.update.id, elapsed, published.deliveries


async def _drain(
    sessions: Any,
    settings: Any,
    runtimes: dict[str, Any],
    peers: dict[str, PeerProcess],
    update_id: int,
    count: int,
    deadline: float,
) -> dict[str, Result]:
    """Run a Dispatcher on `runtimes` until each peer received `count` more messages; per-channel figures."""
    from sqlmodel import col, func, select

    from broadcaster.delivery.dispatch import Dispatcher
    from broadcaster.models import Delivery, utcnow

    before = {name: peer.count() for name, peer in peers.items()}
    dispatcher = Dispatcher(sessions, runtimes, settings.dispatch, settings.server.public_base_url)
    stop = asyncio.Event()
    started_at = utcnow()
    runner: asyncio.Future[Any] = asyncio.create_task(dispatcher.run(stop))
    # Wait on the peers themselves (their own condition variables), bounded by the global deadline.
    left = max(1.0, deadline - time.monotonic())
    waits: asyncio.Future[Any] = asyncio.gather(
        *(asyncio.to_thread(peer.wait_for, before[name] + count, left) for name, peer in peers.items())
    )
    try:
        await asyncio.wait([runner, waits], return_when=asyncio.FIRST_COMPLETED)
        if runner.done():
            runner.result()  # the dispatcher died: raise its error rather than wait out the clock
        received = dict(zip(peers, await waits, strict=True))
    finally:
        stop.set()
        await runner
    figures: dict[str, Result] = {}
    async with sessions() as session:
        for name in peers:
            # Counted in SQL: the bench's own accounting holds no row per delivery (its peak RSS is
            # the broadcaster's, flat in the audience).
            sent_at = col(Delivery.sent_at)
            statement = (
                select(col(Delivery.status), func.count(), func.count(sent_at), func.max(sent_at))
                .where(col(Delivery.update_id) == update_id, col(Delivery.channel) == name)
                .group_by(col(Delivery.status))
            )
            rows = (await session.exec(statement)).all()
            sent = sum(with_time for _, _, with_time, _ in rows)
            last = max((_aware(at) for *_, at in rows if at is not None), default=None)
            # From the dispatcher's start to this channel's last accepted message (sent_at per row).
            span = (last - started_at).total_seconds() if last is not None else 0.0
            figures[name] = {
                "sent": sent,
                "received": received[name] - before[name],
                "statuses": {status: n for status, n, _, _ in rows},
                "seconds": round(span, 3),
                "msg_per_s": round(sent / span, 1) if span > 0 else 0.0,
            }
    return figures


def _aware(value: datetime | str) -> datetime:
    """An aggregate's time: text on SQLite (the column type is not applied to it), naive UTC."""
    at = datetime.fromisoformat(value) if isinstance(value, str) else value
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at


async def _ceilings(
    sessions: Any,
    settings: Any,
    update_id: int,
    smtp: PeerProcess,
    telegram: PeerProcess,
    sc: Scenario,
    count: int,
) -> Result:
    """Each peer's ceiling with a minimal client, sending this update's real e-mail and Telegram text."""
    from sqlmodel import select

    from bench.peers import bot_api_ceiling, smtp_ceiling
    from broadcaster.message import RenderedMessage
    from broadcaster.models import Rendition
    from channels.base import Target
    from channels.email.message import build_email

    statement = select(Rendition.channel, Rendition.payload).where(
        Rendition.update_id == update_id, Rendition.locale == "fr"
    )
    async with sessions() as session:
        payloads = dict((await session.exec(statement)).all())
    email = build_email(
        RenderedMessage.from_json(payloads["email"]),
        Target("ceiling@clients.example.org", "fr", "https://shop.example/unsubscribe/t", "1.t"),
        idempotency_key="ceiling",
        from_address=settings.channels.email.from_address,
        reply_domain=settings.channels.email.reply_domain,
    )
    text = RenderedMessage.from_json(payloads["telegram"]).parts[0]
    before = {"email": smtp.count(), "telegram": telegram.count()}
    figures = {
        "email": await smtp_ceiling(smtp.port, count, sc.pool_size, email.as_bytes()),
        "telegram": await bot_api_ceiling(telegram.url, count, sc.concurrency, text),
    }
    received = {"email": smtp.count() - before["email"], "telegram": telegram.count() - before["telegram"]}
    return {
        name: {"msg_per_s": round(rate, 1), "messages": count, "received": received[name]}
        for name, rate in figures.items()
    }


async def _measure(sc: Scenario, count: int, budget: float) -> Result:
    from broadcaster.db import create_engine, session_factory, upgrade
    from broadcaster.delivery.runtimes import build_channels
    from broadcaster.delivery.subscribers import NewSubscriber, import_subscribers

    deadline = time.monotonic() + budget
    with (
        tempfile.TemporaryDirectory(prefix="fanout-") as tmp,
        PeerProcess(sc.smtp_peer, latency=sc.smtp_latency) as smtp,
        PeerProcess("telegram", latency=sc.telegram_latency) as telegram,
    ):
        url = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
        await asyncio.to_thread(upgrade, url)  # Alembic runs its own event loop: not on ours
        settings = _settings(url, smtp, telegram, sc)
        engine = create_engine(url)
        sessions = session_factory(engine)
        runtimes = build_channels(settings, sessions)
        try:
            # One subscriber per index, on both channels; a third of them read English. Imported
            # IMPORT_CHUNK at a time, as files of that size: an all-or-nothing import holds its whole
            # file, and the peak RSS measured here is the fan-out's, not the test data's.
            started, subscriptions = time.perf_counter(), 0
            for first in range(0, count, IMPORT_CHUNK):
                entries = [
                    NewSubscriber(
                        email=f"client{i:06d}@clients.example.org",
                        telegram_chat_id=str(10**8 + i),
                        locale="en" if i % 3 == 0 else "fr",
                    )
                    for i in range(first, min(count, first + IMPORT_CHUNK))
                ]
                async with sessions() as session:
                    subscriptions += (await import_subscribers(session, settings, entries)).subscriptions
            import_s = time.perf_counter() - started
            update_id, persist_s, rows = await _publish(sessions, settings, "Site indisponible")
            ceilings = await _ceilings(sessions, settings, update_id, smtp, telegram, sc, min(count, 3000))
            alone: dict[str, Result] = {}
            for name, peer in (("email", smtp), ("telegram", telegram)):
                alone |= await _drain(
                    sessions, settings, {name: runtimes[name]}, {name: peer}, update_id, count, deadline
                )
            second_id, second_persist_s, _ = await _publish(sessions, settings, "Toujours indisponible")
            both = {"email": smtp, "telegram": telegram}
            together = await _drain(sessions, settings, runtimes, both, second_id, count, deadline)
        finally:
            for runtime in runtimes.values():
                await runtime.channel.aclose()
            await engine.dispose()
    return {
        "scenario": asdict(sc),
        "count": count,
        "subscriptions": subscriptions,
        "import_s": round(import_s, 3),
        "deliveries": rows,
        "persist_s": round(persist_s, 3),
        "second_persist_s": round(second_persist_s, 3),  # with the first update's rows in the table
        "alone": alone,
        "together": together,
        "peer_ceilings": ceilings,
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),  # KiB on Linux
    }


def _scenario_child(sc: Scenario, count: int, budget: float, conn: Any) -> None:
    try:
        conn.send(("ok", asyncio.run(_measure(sc, count, budget))))
    except BaseException as exc:  # report any failure to the parent instead of a silent exit
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        conn.close()


def run_scenario(sc: Scenario, count: int, budget: float) -> Result:
    """Run one scenario in a fresh process; raise TimeoutError after `budget` seconds."""
    context = multiprocessing.get_context("spawn")
    receiver, sender = context.Pipe(duplex=False)
    proc = context.Process(target=_scenario_child, args=(sc, count, budget, sender), daemon=False)
    proc.start()
    sender.close()
    try:
        if not receiver.poll(budget + 30):  # the child bounds its own waits by `budget`; this is the backstop
            raise TimeoutError(f"scenario {sc.name!r} did not finish within {budget:.0f} s")
        status, payload = receiver.recv()
    except EOFError:
        status, payload = "error", f"the scenario process died (exit code {proc.exitcode})"
    finally:
        if proc.is_alive():
            proc.join(timeout=15)
        if proc.is_alive():
            proc.kill()  # its peers see stdin EOF and exit on their own
            proc.join(timeout=15)
    if status != "ok":
        raise RuntimeError(f"scenario {sc.name!r} failed: {payload}")
    result: Result = payload
    return result


def _persist_target(target: float, count: int) -> float:
    """The issue's targets: `target` up to 10,000 subscribers a channel, twice it above (4 s at 100,000)."""
    return target if count <= 10_000 else 2 * target


def _verdicts(result: Result) -> list[tuple[str, str, str, bool | None]]:
    """(metric, figure, target, met?) rows; met is None where the issue states no target."""
    sc, n, alone, both = result["scenario"], result["count"], result["alone"], result["together"]
    persist, limit = result["persist_s"], _persist_target(sc["persist_target"], n)
    persisted = f"{sum(result['deliveries'].values()):,} in {persist:.3f} s"
    rows: list[tuple[str, str, str, bool | None]] = [
        ("subscribers imported", f"{result['subscriptions']:,} in {result['import_s']:.2f} s", "", None),
        ("deliveries persisted", persisted, f"< {limit:g} s", persist < limit),
    ]
    for name, label in (("email", "e-mail"), ("telegram", "Telegram")):
        rate, target = alone[name]["msg_per_s"], sc[f"{name}_target"]
        met = rate >= target if target else None
        rows.append((f"{label} alone", f"{rate:,.0f} msg/s", f"≥ {target:g}" if target else "—", met))
    rates = f"e-mail {both['email']['msg_per_s']:,.0f} + Telegram {both['telegram']['msg_per_s']:,.0f} msg/s"
    rows.append(("both at once", rates, "", None))
    for name, label in (("email", "SMTP peer"), ("telegram", "Bot API peer")):
        got = [alone[name]["received"], both[name]["received"]]
        ok = got == [n, n] and alone[name]["sent"] == both[name]["sent"] == n
        figure = f"alone {got[0]:,}, together {got[1]:,} {'OK' if ok else 'MISMATCH'}"
        rows.append((f"{label} received", figure, f"{n:,} each", ok))
    for name, label in (("email", "SMTP peer ceiling"), ("telegram", "Bot API peer ceiling")):
        ceiling = result["peer_ceilings"][name]
        figure = f"{ceiling['msg_per_s']:,.0f} msg/s (raw client, {ceiling['messages']:,} msgs)"
        rows.append((label, figure, "", None))
    rows.append(("peak RSS (broadcaster)", f"{result['peak_rss_mib']:,.0f} MiB", "", None))
    return rows


def _print_table(result: Result) -> None:
    from rich.console import Console
    from rich.table import Table

    marks = {True: "[green]✓[/]", False: "[red]✗[/]", None: ""}
    sc = result["scenario"]
    title = f"{sc['name']} — SMTP pool {sc['pool_size']} ({sc['smtp_peer']} peer), "
    title += f"{sc['concurrency']} Bot API requests in flight"
    table = Table(title=title, title_justify="left")
    for column in ("metric", "figure", "target", ""):
        table.add_column(column)
    for metric, figure, target, met in _verdicts(result):
        table.add_row(metric, figure, target, marks[met])
    Console().print(table)


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run each scenario in its own process, print tables or JSON; 1 on failure."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--count", type=int, default=10_000, help="subscribers per channel (default 10000)")
    parser.add_argument("--timeout", type=float, default=600.0, help="overall time budget in seconds")
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of tables")
    parser.add_argument(
        "--parsing-smtp-peer",
        action="store_true",
        help="use the test suite's SmtpPeer (parses every message: a few hundred msg/s at most)",
    )
    parser.add_argument(
        "--scenario",
        type=int,
        choices=range(1, len(SCENARIOS) + 1),
        action="append",
        help="run only this scenario (1 = no latency, 2 = latency); repeatable",
    )
    args = parser.parse_args(argv)
    chosen = [SCENARIOS[i - 1] for i in args.scenario] if args.scenario else list(SCENARIOS)
    if args.parsing_smtp_peer:
        chosen = [replace(sc, smtp_peer="smtp") for sc in chosen]
    deadline = time.monotonic() + args.timeout
    results: list[Result] = []
    for sc in chosen:
        try:
            results.append(run_scenario(sc, args.count, max(1.0, deadline - time.monotonic())))
        except (TimeoutError, RuntimeError) as exc:
            print(f"fanout: aborted: {exc} (the overall --timeout is {args.timeout:g} s)", file=sys.stderr)
            return 1
        if not args.json:
            _print_table(results[-1])
    met = [m for r in results for *_, m in _verdicts(r) if m is not None]
    if args.json:
        print(json.dumps({"results": results, "all_met": all(met)}, indent=2, ensure_ascii=False))
    return 0 if all(met) else 1


if __name__ == "__main__":
    sys.exit(main())
