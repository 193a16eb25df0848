"""Inbox benchmark: Telegram webhook messages/s ingested, and the status bot's answer latency.

Each phase runs a real `broadcaster serve` process (uvicorn, a fresh SQLite database, its workers
and inbox filer running) and talks to it over HTTP with the webhook secret header.

- ingest: N distinct Telegram updates from 50 concurrent clients. Printed: webhook
  acknowledgements per second, and messages filed into conversations per second end to end
  (first request → last message filed). Target (issue #4): ≥ 500 messages/s filed.
- bot: Telegram is live, its `base_url` a local Bot API peer that answers at once (so the
  provider's own time is excluded), its rate limits lifted (Telegram's 30 msg/s bucket would
  otherwise set the figure: 50 waiting customers / 30 per s ≈ 1.7 s). N customers, each its own
  chat, ask one status question (French or English, or /status); 50 conversations at a time,
  each asking, waiting for the answer, reading it (`--think`, 1 s: a random 0.5–1.5 s per
  reading, seeded, as load testers such as Locust model people), then the next customer of that
  slot asks (`--think 0`: saturation, 50 questions always in flight). `--lockstep`: the worst
  case, all 50 ask at the same instant every round. Latency = from just before the customer's
  POST until the peer receives the bot's sendMessage for that chat. Target (issue #4): p99 ≤
  100 ms. Also printed: answers/s, and where the time goes, stage by stage, from the
  timestamps the product stores (see `STAGES`).

The peer runs in its own process (bench/peers.py) and stamps each sendMessage with time.time() as
it arrives; the customers stamp their POST with time.time() too, a clock shared by every process
of the machine. In this process the peer would share the GIL with 50 customers, and its stamps
would wait behind them. A customer learns its answer arrived a few ms after the fact (the peer
reports in batches): that delays its next question, never the latency measured.

    .venv/bin/python bench/inbox.py                              # both phases
    .venv/bin/python bench/inbox.py --phase bot --customers 300 --json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # run as a script: `python bench/inbox.py` from anywhere

from bench.peers import TELEGRAM_TOKEN, PeerProcess  # noqa: E402

Result = dict[str, Any]

SECRET = "bench-webhook-secret"
CLIENTS = 50
HTTP_TIMEOUT = 30.0  # seconds a webhook call may take before the benchmark fails
TARGET = 500.0  # messages filed per second
TARGET_P99_MS = 100.0
ANSWER_TIMEOUT = 10.0  # a customer gives up waiting for the bot after this many seconds
FIRST_CHAT = 500_000
QUESTIONS = (
    "le site est en panne ?",
    "is checkout down?",
    "Le paiement ne marche pas ?",
    "is the website down?",
    "/status",
)
# (stage, the stamp it starts at, the one it ends at): the customer's "sent" and "arrived", and
# the product's own, read from the database by `stage_stamps`.
STAGES = (
    ("webhook: POST → write begins", "sent", "stored"),
    ("commit, filer → answer queued", "stored", "queued"),
    ("rest of the filer batch", "queued", "filed"),
    ("commit, claim, sendMessage → peer", "filed", "arrived"),
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def telegram_update(update_id: int, chat: int, text: str, date: int) -> bytes:
    return json.dumps({
        "update_id": update_id,
        "message": {"message_id": update_id, "date": date, "text": text,
                    "chat": {"id": chat, "type": "private", "first_name": "Client"},
                    "from": {"id": chat, "is_bot": False, "first_name": "Client", "language_code": "fr"}},
    }).encode()  # fmt: skip


def update(i: int) -> bytes:
    """The ingest phase's i-th update: 2,000 customers, several messages each."""
    text = "le site est en panne ?" if i % 3 else "is checkout down?"
    return telegram_update(900_000 + i, 10_000 + i % 2_000, text, 1_795_000_000 + i)


class BenchDatabase:
    """A fresh database for one phase: a SQLite file (default) or, with `--database-url`, a new
    PostgreSQL database created beside the one named and dropped afterwards."""

    def __init__(self, tmp: Path, server_url: str) -> None:
        self._server_url = server_url
        if server_url:
            base = server_url.rsplit("/", 1)[0]
            self._name = f"bench_inbox_{os.getpid()}_{time.monotonic_ns() % 10**6}"
            self.url = f"{base}/{self._name}"
            asyncio.run(self._admin(f'CREATE DATABASE "{self._name}"'))
        else:
            self.url = f"sqlite+aiosqlite:///{tmp / 'inbox.db'}"

    def close(self) -> None:
        if self._server_url:
            asyncio.run(self._admin(f'DROP DATABASE IF EXISTS "{self._name}" WITH (FORCE)'))

    async def _admin(self, statement: str) -> None:
        import asyncpg

        connection = await asyncpg.connect(self._server_url.replace("postgresql+asyncpg", "postgresql"))
        try:
            await connection.execute(statement)
        finally:
            await connection.close()

    def fetch(self, query: str) -> list[tuple[Any, ...]]:
        if not self._server_url:
            with sqlite3.connect(self.url.split("///", 1)[1]) as connection:
                return connection.execute(query).fetchall()
        return asyncio.run(self._fetch(query))

    async def _fetch(self, query: str) -> list[tuple[Any, ...]]:
        import asyncpg

        connection = await asyncpg.connect(self.url.replace("postgresql+asyncpg", "postgresql"))
        try:
            return [tuple(row) for row in await connection.fetch(query)]
        finally:
            await connection.close()


def filed(db: BenchDatabase) -> int:
    """Customer messages filed (the table also holds the bot's answers)."""
    return int(db.fetch("SELECT count(*) FROM message WHERE direction = 'in'")[0][0])


@contextmanager
def serving(
    tmp: Path, telegram: str, database_url: str, *, bot: bool = True
) -> Iterator[tuple[str, BenchDatabase]]:
    """`broadcaster init` and `serve` on a fresh database; yields (base URL, the database).

    `telegram` is extra TOML for `[channels.telegram]`. The server is stopped on the way out.
    """
    port, db = free_port(), BenchDatabase(tmp, database_url)
    config = tmp / "config.toml"
    config.write_text(
        f'[server]\nport = {port}\n[database]\nurl = "{db.url}"\n'
        f"[inbox]\nbot_enabled = {'true' if bot else 'false'}\n"
        f'[channels.telegram]\nwebhook_secret = "{SECRET}"\n{telegram}',
        encoding="utf-8",
    )
    env = {**os.environ, "BROADCASTER_CONFIG": str(config)}
    cli = [sys.executable, "-m", "broadcaster"]
    init = subprocess.run([*cli, "init"], env=env, capture_output=True, cwd=ROOT, timeout=120)
    if init.returncode != 0:
        raise RuntimeError(f"broadcaster init failed:\n{init.stderr.decode(errors='replace')[-2000:]}")
    with (tmp / "serve.log").open("wb") as log:
        server = subprocess.Popen([*cli, "serve"], env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                                  stderr=log, stdin=subprocess.DEVNULL)  # fmt: skip
        try:
            base_url = f"http://127.0.0.1:{port}"
            wait_until_healthy(base_url, server, tmp / "serve.log")
            yield base_url, db
        finally:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait(timeout=10)
            db.close()


def wait_until_healthy(base_url: str, server: subprocess.Popen[bytes], log: Path) -> None:
    """Wait (30 s at most) for /healthz; raise with the end of the server's log if it never answers."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and server.poll() is None:
        try:
            if httpx.get(f"{base_url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    tail = log.read_text(encoding="utf-8", errors="replace")[-2000:]
    raise RuntimeError(f"broadcaster serve did not become healthy within 30 s:\n{tail}")


# -- phase 1: ingest ----------------------------------------------------------------------------


def webhook_client(base_url: str) -> Any:
    """An aiohttp session posting to the Telegram webhook with its secret, CLIENTS connections.

    aiohttp, not httpx, on the client side: httpcore's pool costs ~2.5 ms of CPU per request at 50
    connections, which would measure the client instead of the server.
    """
    import aiohttp

    headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET, "Content-Type": "application/json"}
    return aiohttp.ClientSession(
        base_url, headers=headers, connector=aiohttp.TCPConnector(limit=CLIENTS),
        timeout=aiohttp.ClientTimeout(total=HTTP_TIMEOUT),
    )  # fmt: skip


async def send_all(base_url: str, count: int) -> float:
    """POST every update with CLIENTS in flight; returns the seconds it took."""
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(count):
        queue.put_nowait(i)
    async with webhook_client(base_url) as client:

        async def worker() -> None:
            while not queue.empty():
                i = queue.get_nowait()
                async with client.post("/webhooks/telegram", data=update(i)) as response:
                    response.raise_for_status()

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CLIENTS)))
        return time.perf_counter() - started


def live_telegram(peer: PeerProcess) -> str:
    """`[channels.telegram]` keys for the local Bot API peer, Telegram's own limits lifted."""
    return (
        f'token = "{TELEGRAM_TOKEN}"\nbase_url = "{peer.url}"\n'
        "rate_per_second = 0\nper_chat_interval_seconds = 0\n"
    )


def run_ingest(count: int, timeout: float, database_url: str, *, bot: bool) -> Result:
    """Telegram live, as deployed. With `bot`, every customer's first question is also answered
    (sent to the peer) by the same process while it ingests."""
    with (
        tempfile.TemporaryDirectory() as tmp,
        PeerProcess("telegram") as peer,
        serving(Path(tmp), live_telegram(peer), database_url, bot=bot) as (base_url, db),
    ):
        started = time.perf_counter()
        sent_in = asyncio.run(send_all(base_url, count))
        deadline = time.monotonic() + timeout
        while filed(db) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        total = time.perf_counter() - started
        count_filed = filed(db)
    return {
        "database": "PostgreSQL" if database_url else "SQLite",
        "status_bot": "on: answers 2,000 customers meanwhile" if bot else "off",
        "updates": count,
        "webhook_acks_per_s": round(count / sent_in),
        "filed": count_filed,
        "filed_per_s_end_to_end": round(count_filed / total),
        # The target is the inbox's: with the bot on, the same process also sends its answers.
        "target_filed_per_s": None if bot else TARGET,
        "met": count_filed == count and (bot or count_filed / total >= TARGET),
    }


# -- phase 2: the status bot's answer latency ---------------------------------------------------


@dataclass(slots=True)
class Asked:
    """One customer's question: when it was sent, and when the bot's answer reached the peer."""

    sent: float
    arrived: float | None = None


async def ask_all(
    base_url: str, peer: PeerProcess, customers: int, deadline: float, think: float, lockstep: bool = False
) -> dict[str, Asked]:
    """Every customer asks once, CLIENTS talking at a time; returns them by chat id.

    Each of the CLIENTS conversations asks, waits for the answer, reads it, then the next
    customer of that slot asks: `think` 0 is a saturation test, not 50 people.
    People read at their own pace: each reads for a random time between 0.5 and 1.5 × `think`
    (seeded, as Locust's `between`), and the slots start spread over one `think`. With
    `lockstep`, every slot starts at once and reads exactly `think`: the CLIENTS questions then
    arrive in one burst each round, the worst case.

    A customer waits at most ANSWER_TIMEOUT for the answer; none starts after `deadline`
    (time.monotonic()).
    """

    loop = asyncio.get_running_loop()
    asked: dict[str, Asked] = {}
    answered: dict[str, asyncio.Future[float]] = {}
    pending = iter(range(customers))
    async with webhook_client(base_url) as client:

        async def customer(slot: int) -> None:
            reading = random.Random(slot)  # reproducible: the same pauses on every run
            if not lockstep:
                await asyncio.sleep(think * slot / CLIENTS)
            for i in pending:
                if time.monotonic() > deadline:
                    return
                chat = FIRST_CHAT + i
                body = telegram_update(700_000 + i, chat, QUESTIONS[i % len(QUESTIONS)], int(time.time()))
                answer = answered[str(chat)] = loop.create_future()
                question = asked[str(chat)] = Asked(sent=time.time())
                async with client.post("/webhooks/telegram", data=body) as response:
                    response.raise_for_status()
                try:
                    question.arrived = await asyncio.wait_for(answer, ANSWER_TIMEOUT)
                except TimeoutError:
                    continue  # unanswered: counted as such
                await asyncio.sleep(think if lockstep else think * reading.uniform(0.5, 1.5))

        done = asyncio.Event()
        async with asyncio.TaskGroup() as group:
            watcher = group.create_task(watch_arrivals(peer, answered, done))
            await asyncio.gather(*(customer(slot) for slot in range(CLIENTS)))
            done.set()
        watcher.result()
    return asked


async def watch_arrivals(
    peer: PeerProcess, answered: dict[str, asyncio.Future[float]], done: asyncio.Event
) -> None:
    """Resolve each customer's future with the time the peer received the bot's answer to it."""
    seen = 0
    while not done.is_set():
        arrivals = await asyncio.to_thread(peer.arrivals, seen, 0.2)  # a bounded wait in the child
        seen += len(arrivals)
        for chat, at in arrivals:
            future = answered.get(chat)
            if future is not None and not future.done():  # the first answer counts
                future.set_result(at)


def stage_stamps(db: BenchDatabase) -> dict[str, dict[str, float]]:
    """Per chat, the time.time() of the steps the product stores: stored, queued, filed.

    stored: the webhook's write begins (inbound_message.created_at); queued: the bot's answer
    (its message's created_at); filed: the filer batch's processed_at, just before it commits.
    (The claim leaves no trace once the row is sent: lease_until is cleared.)
    """
    query = """
        SELECT r.conversation_key, r.created_at, m.created_at, r.processed_at
          FROM inbound_message r
          JOIN conversation c ON c.channel = r.channel AND c.conversation_key = r.conversation_key
          JOIN message m ON m.conversation_id = c.id AND m.direction = 'out'
         WHERE r.channel = 'telegram' AND r.processed_at IS NOT NULL
    """
    rows = db.fetch(query)
    return {
        chat: {"stored": _epoch(stored), "queued": _epoch(queued), "filed": _epoch(processed)}
        for chat, stored, queued, processed in rows
    }


def _epoch(stored: str | datetime) -> float:
    """A stored time (SQLite: naive-UTC text; PostgreSQL: aware), as time.time() would have said it."""
    moment = stored if isinstance(stored, datetime) else datetime.fromisoformat(stored)
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile (`share` 0.99 → p99) of non-empty `values`."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def breakdown(asked: dict[str, Asked], stamps: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """p50 / p99 milliseconds of every stage in `STAGES`, over the answered customers."""
    result = {}
    for name, start, end in STAGES:
        spans = []
        for chat, question in asked.items():
            if question.arrived is None or chat not in stamps:
                continue
            points = {**stamps[chat], "sent": question.sent, "arrived": question.arrived}
            spans.append((points[end] - points[start]) * 1000)
        if spans:
            result[name] = {
                "p50_ms": round(percentile(spans, 0.5), 1),
                "p99_ms": round(percentile(spans, 0.99), 1),
            }
    return result


def run_bot(
    customers: int, timeout: float, think: float, database_url: str, lockstep: bool = False
) -> Result:
    # Telegram's limits are the provider's; each customer is its own chat: the pacer never waits anyway.
    with (
        tempfile.TemporaryDirectory() as tmp,
        PeerProcess("telegram") as peer,
        serving(Path(tmp), live_telegram(peer), database_url) as (base_url, db),
    ):
        deadline = time.monotonic() + timeout
        asked = asyncio.run(ask_all(base_url, peer, customers, deadline, think, lockstep))
        stamps = stage_stamps(db)
    answered = [(q.sent, q.arrived) for q in asked.values() if q.arrived is not None]
    latencies = [(arrived - sent) * 1000 for sent, arrived in answered]
    result: Result = {
        "database": "PostgreSQL" if database_url else "SQLite",
        "customers": customers,
        "in_flight": CLIENTS,
        "think_s": think,
        "arrivals": "lockstep: all 50 ask at the same instant each round"
        if lockstep
        else "independent: each reads 0.5-1.5 x think, seeded",
        "answered": len(latencies),
        "provider": "local Bot API peer answering at once: provider time excluded",
        "telegram_limits": "lifted: rate_per_second = 0, per_chat_interval_seconds = 0",
    }
    if latencies:  # none at all: the phase failed, `met` says so
        span = max(arrived for _, arrived in answered) - min(sent for sent, _ in answered)
        result["answers_per_s"] = round(len(latencies) / span) if span > 0 else None
        for label, share in (("p50_ms", 0.5), ("p90_ms", 0.9), ("p99_ms", 0.99), ("max_ms", 1.0)):
            result[label] = round(percentile(latencies, share), 1)
    result["target_p99_ms"] = TARGET_P99_MS
    result["met"] = len(latencies) == customers and percentile(latencies, 0.99) <= TARGET_P99_MS
    result["stages"] = breakdown(asked, stamps)
    return result


# -- report -------------------------------------------------------------------------------------


def print_phase(title: str, result: Result) -> None:
    print(title)
    for key, value in result.items():
        if key == "stages":
            print(f"{'where the time goes':>24}: p50 / p99 ms")
            for stage, spans in value.items():
                print(f"{stage:>40}: {spans['p50_ms']:>7} / {spans['p99_ms']}")
        else:
            print(f"{key:>24}: {value}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phase", choices=["ingest", "bot", "both"], default="both")
    parser.add_argument("--count", type=int, default=5000, help="Telegram updates to send (ingest)")
    parser.add_argument("--customers", type=int, default=1000, help="customers asking the bot (bot)")
    parser.add_argument(
        "--timeout", type=float, default=300, help="give up on a phase after this many seconds"
    )
    parser.add_argument(
        "--think", type=float, default=1.0,
        help="seconds a customer reads an answer before the next one of their slot asks (0: saturation)",
    )  # fmt: skip
    parser.add_argument(
        "--database-url", default="",
        help="a PostgreSQL server to run on (postgresql+asyncpg://user@host/db): a fresh database is "
        "created beside it and dropped; default a SQLite file",
    )  # fmt: skip
    parser.add_argument(
        "--lockstep", action="store_true",
        help="the worst case: every customer asks at the same instant each round (bot)",
    )  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args(argv)
    if args.count < 1 or args.customers < 1:
        parser.error("--count and --customers must be at least 1")
    results: dict[str, Result] = {}
    if args.phase in ("ingest", "both"):
        results["ingest"] = run_ingest(args.count, args.timeout, args.database_url, bot=False)
        results["ingest_with_bot"] = run_ingest(args.count, args.timeout, args.database_url, bot=True)
    if args.phase in ("bot", "both"):
        results["bot"] = run_bot(args.customers, args.timeout, args.think, args.database_url, args.lockstep)
    if args.json:
        print(json.dumps(results))
    else:
        titles = {
            "ingest": f"ingest: {args.count:,} Telegram updates, {CLIENTS} clients, status bot off",
            "ingest_with_bot": f"ingest: {args.count:,} Telegram updates, {CLIENTS} clients, status bot on",
            "bot": f"status bot: {args.customers:,} customers, {CLIENTS} waiting at a time, Telegram live",
        }
        for name, result in results.items():
            print_phase(titles[name], result)
    return 0 if all(result["met"] for result in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
