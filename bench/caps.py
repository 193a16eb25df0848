"""Cap adherence: one worker against a Telegram peer that enforces the flood limits with 429.

For each cap, the peer (its own process) refuses whatever goes over `cap` messages in any sliding
second, or 1 a second to a chat, and counts its 429s; the worker is configured at the same
`rate_per_second`. Prints the rate sustained as % of the cap (from the peer's arrival times),
the busiest sliding second the peer saw, and the 429s.

    .venv/bin/python bench/caps.py                     # 1,000 chats at 30/s and at 100/s
    .venv/bin/python bench/caps.py --caps 30 --chats 2000 --json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # run as a script: `python bench/caps.py` from anywhere

from bench.peers import TELEGRAM_TOKEN, PeerProcess  # noqa: E402
from bench.sqlite import temporary_database  # noqa: E402

Result = dict[str, Any]


def _settings(url: str, telegram: PeerProcess, cap: int, concurrency: int) -> Any:
    from broadcaster.config import parse_settings

    bot = dict(token=TELEGRAM_TOKEN, base_url=telegram.url, concurrency=concurrency, rate_per_second=cap)
    bot |= dict(per_chat_interval_seconds=1.0, channel_id="@shop_status")
    off = {"enabled": False}
    channels = dict(telegram=bot, email=off, twitter=off, facebook=off, push=off, blog=off)
    brand = {"name": "Maison Exemple", "alternative": {"fr": "Commandes au 01 23 45 67 89"}}
    dispatch = {"batch_size": 500, "poll_interval_seconds": 0.05}
    data = dict(brand=brand, database={"url": url}, dispatch=dispatch, channels=channels)
    return parse_settings(data, "bench/caps.py")


def busiest_second(times: list[float]) -> int:
    """The most arrivals in any sliding second."""
    times = sorted(times)
    most, first = 0, 0
    for last, at in enumerate(times):
        while times[first] + 1.0 <= at:
            first += 1
        most = max(most, last - first + 1)
    return most


async def _send_to_all(sessions: Any, settings: Any, chats: int, budget: float) -> tuple[Any, float]:
    """Subscribe `chats` chats, open an incident, deliver it; (counts per channel, seconds)."""
    from broadcaster.compose import Composer
    from broadcaster.dispatch import Dispatcher
    from broadcaster.publish import UpdateDraft, open_incident
    from broadcaster.subscribers import NewSubscriber, import_subscribers
    from channels import build_channels

    runtimes = build_channels(settings, sessions)
    try:
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
        dispatcher = Dispatcher(sessions, runtimes, settings.dispatch, settings.server.public_base_url)
        started = time.monotonic()
        counts = await dispatcher.deliver([published.update.id], timeout=budget, retry_horizon=30)
        return counts, time.monotonic() - started
    finally:
        for runtime in runtimes.values():
            await runtime.channel.aclose()


async def measure(cap: int, chats: int, latency: float, concurrency: int, budget: float) -> Result:
    """One worker, `chats` Telegram chats and the public channel, at `cap` messages a second."""
    with PeerProcess("telegram", latency=latency, enforce=cap) as telegram:
        async with temporary_database("caps-") as (url, sessions):
            settings = _settings(url, telegram, cap, concurrency)
            counts, seconds = await _send_to_all(sessions, settings, chats, budget)
        arrivals = [at for _, at in telegram.arrivals(0, timeout=10)]
        refused = telegram.refused()
    span = max(arrivals) - min(arrivals) if len(arrivals) > 1 else 0.0
    sustained = (len(arrivals) - 1) / span if span > 0 else 0.0
    return {
        "cap": cap,
        "workers": 1,
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
    print("| cap/s | workers | chats | received | sustained msg/s | % of cap | busiest second | 429s |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['cap']} | {r['workers']} | {r['chats']} | {r['received']} | {r['sustained_msg_per_s']} "
            f"| {r['percent_of_cap']} % | {r['busiest_second']} | {r['429s']} |"
        )


def main(argv: list[str] | None = None) -> int:
    """Run each cap; exit 1 if a run drew a 429 or missed a chat."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--caps", default="30,100", help="messages/s, comma-separated (default 30,100)")
    parser.add_argument("--chats", type=int, default=1_000, help="Telegram chats (default 1000)")
    parser.add_argument("--latency", type=float, default=0.02, help="seconds the peer adds to each reply")
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight (default 16)")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds allowed per cap")
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of a table")
    args = parser.parse_args(argv)
    caps = [int(c) for c in args.caps.split(",") if c.strip()]
    results = [
        asyncio.run(measure(cap, args.chats, args.latency, args.concurrency, args.timeout)) for cap in caps
    ]
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        _print_table(results)
    ok = all(r["429s"] == 0 and r["received"] == args.chats + 1 for r in results)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
