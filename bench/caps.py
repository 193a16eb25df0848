"""Cap adherence: one and two worker processes against a Telegram peer that enforces the flood
limits with 429.

For each cap, the peer (its own process) refuses whatever goes over `cap` messages in any sliding
second, or 1 a second to a chat, and counts its 429s; every worker is configured at the same
`rate_per_second` for the same bot. One worker runs on SQLite (its own pacer); several share a
fresh PostgreSQL database and so one budget (in PostgreSQL, or Redis with --redis-url). Prints
the rate sustained as % of the cap (from the peer's arrival times), the busiest sliding second
the peer saw, and the 429s.

    .venv/bin/python bench/caps.py                     # 1,000 chats at 30/s and 100/s, 1 and 2 workers
    .venv/bin/python bench/caps.py --caps 30 --workers 2 --redis-url redis://127.0.0.1:6379/1 --json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # run as a script: `python bench/caps.py` from anywhere

from bench.peers import TELEGRAM_TOKEN, PeerProcess  # noqa: E402
from bench.sqlite import DEFAULT_POSTGRES, temporary_database, temporary_postgres  # noqa: E402

Result = dict[str, Any]


def _config(url: str, telegram_url: str, cap: int, concurrency: int, redis_url: str) -> dict[str, Any]:
    bot = dict(token=TELEGRAM_TOKEN, base_url=telegram_url, concurrency=concurrency, rate_per_second=cap)
    bot |= dict(per_chat_interval_seconds=1.0, channel_id="@shop_status")
    off = {"enabled": False}
    channels = dict(telegram=bot, email=off, twitter=off, facebook=off, push=off, blog=off)
    brand = {"name": "Maison Exemple", "alternative": {"fr": "Commandes au 01 23 45 67 89"}}
    dispatch: dict[str, Any] = {"batch_size": 500, "poll_interval_seconds": 0.05}
    if redis_url:
        dispatch["redis_url"] = redis_url
    return dict(brand=brand, database={"url": url}, dispatch=dispatch, channels=channels)


def busiest_second(times: list[float]) -> int:
    """The most arrivals in any sliding second."""
    times = sorted(times)
    most, first = 0, 0
    for last, at in enumerate(times):
        while times[first] + 1.0 <= at:
            first += 1
        most = max(most, last - first + 1)
    return most


async def _publish(sessions: Any, settings: Any, chats: int) -> int:
    """Subscribe `chats` chats and open an incident; its first update's id."""
    from broadcaster.compose.render import Composer
    from broadcaster.delivery.subscribers import NewSubscriber, import_subscribers
    from broadcaster.publishing.incidents import UpdateDraft, open_incident

    entries = [NewSubscriber(telegram_chat_id=str(10**8 + i), line=i + 2) for i in range(chats)]
    async with sessions() as session:
        await import_subscribers(session, settings, entries)
        published = await open_incident(
            session,
            settings,
            Composer(None, default_locale="fr"),
            title="Paiement indisponible",
            impact="major",
            components=["checkout"],
            draft=UpdateDraft(status="investigating", message="Le paiement échoue. Nous enquêtons."),
            force=True,
        )
    assert published.update.id is not None
    return published.update.id


async def _deliver(config: dict[str, Any], update_id: int, budget: float) -> dict[str, Any]:
    """One worker: its own engine, channels and pacer, until the update is delivered."""
    from broadcaster.config import parse_settings
    from broadcaster.db import create_engine, session_factory
    from broadcaster.delivery.dispatch import Dispatcher
    from broadcaster.delivery.runtimes import build_channels

    settings = parse_settings(config, "bench/caps.py")
    engine = create_engine(settings.database.url)
    sessions = session_factory(engine)
    runtimes = build_channels(settings, sessions)
    try:
        dispatcher = Dispatcher(sessions, runtimes, settings.dispatch, settings.server.public_base_url)
        return await dispatcher.deliver([update_id], timeout=budget, retry_horizon=30)
    finally:
        for runtime in runtimes.values():
            await runtime.channel.aclose()
        await engine.dispose()


def _worker_process(config: dict[str, Any], update_id: int, budget: float) -> None:
    asyncio.run(_deliver(config, update_id, budget))


@asynccontextmanager
async def _database(workers: int, postgres: str) -> AsyncIterator[tuple[str, Any]]:
    """SQLite for one worker; a fresh PostgreSQL database for several (they must share it)."""
    if workers == 1:
        async with temporary_database("caps-") as found:
            yield found
        return
    async with temporary_postgres(postgres or DEFAULT_POSTGRES, "bench_caps") as found:
        yield found


async def measure(
    cap: int, chats: int, latency: float, concurrency: int, budget: float, workers: int, postgres: str,
    redis_url: str,
) -> Result:  # fmt: skip
    """`workers` processes, `chats` Telegram chats and the public channel, at `cap` messages a second."""
    from broadcaster.config import parse_settings

    with PeerProcess("telegram", latency=latency, enforce=cap) as telegram:
        async with _database(workers, postgres) as (url, sessions):
            config = _config(url, telegram.url, cap, concurrency, redis_url)
            update_id = await _publish(sessions, parse_settings(config, "bench/caps.py"), chats)
            started = time.monotonic()
            spawn = multiprocessing.get_context("spawn")
            processes = [
                spawn.Process(target=_worker_process, args=(config, update_id, budget))
                for _ in range(workers)
            ]
            for process in processes:
                process.start()
            for process in processes:
                process.join(budget + 60)
                if process.is_alive():
                    process.kill()
            seconds = time.monotonic() - started
            from broadcaster.delivery import outbox

            async with sessions() as session:
                counts = await outbox.counts_by_channel(session, [update_id])
        arrivals = [at for _, at in telegram.arrivals(0, timeout=10)]
        refused = telegram.refused()
    span = max(arrivals) - min(arrivals) if len(arrivals) > 1 else 0.0
    sustained = (len(arrivals) - 1) / span if span > 0 else 0.0
    return {
        "cap": cap,
        "workers": workers,
        "store": ("redis" if redis_url else "postgresql") if workers > 1 else "in process",
        "chats": chats,
        "statuses": counts.get("telegram", {}),
        "received": len(arrivals),
        "seconds": round(seconds, 2),
        "sustained_msg_per_s": round(sustained, 1),
        "percent_of_cap": round(100 * sustained / cap, 1),
        "busiest_second": busiest_second(arrivals),
        "429s": refused,
    }


def _print_table(results: list[Result]) -> None:
    print("| cap/s | workers | budget in | chats | received | sustained msg/s | % of cap | busiest second "
          "| 429s |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['cap']} | {r['workers']} | {r['store']} | {r['chats']} | {r['received']} "
            f"| {r['sustained_msg_per_s']} | {r['percent_of_cap']} % | {r['busiest_second']} | {r['429s']} |"
        )


def main(argv: list[str] | None = None) -> int:
    """Run each cap; exit 1 if a run drew a 429 or missed a chat."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--caps", default="30,100", help="messages/s, comma-separated (default 30,100)")
    parser.add_argument("--chats", type=int, default=1_000, help="Telegram chats (default 1000)")
    parser.add_argument("--latency", type=float, default=0.02, help="seconds the peer adds to each reply")
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight (default 16)")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds allowed per cap")
    parser.add_argument(
        "--workers", type=int, nargs="+", default=[1, 2], help="worker processes (default 1 2)"
    )
    parser.add_argument(
        "--postgres", default=os.environ.get("BROADCASTER_TEST_DATABASE_URL", ""),
        help=f"PostgreSQL of several workers ($BROADCASTER_TEST_DATABASE_URL, else {DEFAULT_POSTGRES})",
    )  # fmt: skip
    parser.add_argument("--redis-url", default="", help="keep the shared budget in this Redis instead")
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of a table")
    args = parser.parse_args(argv)
    caps = [int(c) for c in args.caps.split(",") if c.strip()]
    results = [
        asyncio.run(
            measure(
                cap,
                args.chats,
                args.latency,
                args.concurrency,
                args.timeout,
                workers,
                args.postgres,
                args.redis_url,
            )
        )  # fmt: skip
        for cap in caps
        for workers in args.workers
    ]
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        _print_table(results)
    ok = all(r["429s"] == 0 and r["received"] == args.chats + 1 for r in results)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
