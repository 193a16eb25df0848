"""Inbox ingest benchmark: Telegram webhook calls per second, stored and then filed into the inbox.

A real `broadcaster serve` process (uvicorn, SQLite, its workers and inbox filer running) receives
N distinct Telegram updates from 50 concurrent clients over HTTP, with the secret header. Printed:
webhook acknowledgements per second, and messages filed into conversations per second end to end
(first request → last message filed). Target (issue #4): ≥ 500 messages/s filed.

    .venv/bin/python bench/inbox.py                 # 5,000 updates
    .venv/bin/python bench/inbox.py --count 1000 --json

The status-bot latency half of issue #4's benchmark waits for the bot.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
SECRET = "bench-webhook-secret"
CLIENTS = 50
TARGET = 500.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def update(i: int) -> bytes:
    chat = 10_000 + i % 2_000  # 2,000 customers, several messages each
    text = "le site est en panne ?" if i % 3 else "is checkout down?"
    return json.dumps({
        "update_id": 900_000 + i,
        "message": {"message_id": i, "date": 1_795_000_000 + i, "text": text,
                    "chat": {"id": chat, "type": "private", "first_name": "Client"},
                    "from": {"id": chat, "is_bot": False, "first_name": "Client", "language_code": "fr"}},
    }).encode()  # fmt: skip


def filed(db: Path) -> int:
    with sqlite3.connect(db) as connection:
        return int(connection.execute("SELECT count(*) FROM message").fetchone()[0])


async def send_all(base_url: str, count: int) -> float:
    """POST every update with CLIENTS in flight; returns the seconds it took.

    aiohttp, not httpx, on the client side: httpcore's pool costs ~2.5 ms of CPU per request at 50
    connections, which would measure the client instead of the server.
    """
    import aiohttp

    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(count):
        queue.put_nowait(i)
    headers = {"X-Telegram-Bot-Api-Secret-Token": SECRET, "Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=CLIENTS)
    async with aiohttp.ClientSession(base_url, headers=headers, connector=connector) as client:

        async def worker() -> None:
            while not queue.empty():
                i = queue.get_nowait()
                async with client.post("/webhooks/telegram", data=update(i)) as response:
                    response.raise_for_status()

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(CLIENTS)))
        return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=5000, help="Telegram updates to send")
    parser.add_argument("--timeout", type=float, default=300, help="give up after this many seconds")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        port, db = free_port(), Path(tmp) / "inbox.db"
        config = Path(tmp) / "config.toml"
        config.write_text(
            f'[server]\nport = {port}\n[database]\nurl = "sqlite+aiosqlite:///{db}"\n'
            f'[channels.telegram]\nwebhook_secret = "{SECRET}"\n',
            encoding="utf-8",
        )
        env = {**os.environ, "BROADCASTER_CONFIG": str(config)}
        cli = [sys.executable, "-m", "broadcaster"]
        subprocess.run([*cli, "init"], env=env, check=True, capture_output=True, cwd=ROOT, timeout=120)
        server = subprocess.Popen([*cli, "serve"], env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)  # fmt: skip
        try:
            base_url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    if httpx.get(f"{base_url}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.1)
            started = time.perf_counter()
            sent_in = asyncio.run(send_all(base_url, args.count))
            deadline = time.monotonic() + args.timeout
            while filed(db) < args.count and time.monotonic() < deadline:
                time.sleep(0.05)
            total = time.perf_counter() - started
            count_filed = filed(db)
        finally:
            server.terminate()
            server.wait(timeout=30)
    result = {
        "updates": args.count,
        "webhook_acks_per_s": round(args.count / sent_in),
        "filed": count_filed,
        "filed_per_s_end_to_end": round(count_filed / total),
        "target_filed_per_s": TARGET,
        "met": count_filed == args.count and count_filed / total >= TARGET,
    }
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>24}: {value}")
    return 0 if result["met"] else 1


if __name__ == "__main__":
    sys.exit(main())
