"""Several nodes: two `broadcaster serve` processes on one PostgreSQL, as behind a load balancer.

Real processes, one config file, one database, the real Telegram and SMTP peers:

- webhooks spread over both nodes, each update also delivered to the other node at the same
  time (a provider retry the balancer sent elsewhere), new customers writing twice at once, one
  message to each node → every customer message filed once, one conversation per customer, the
  bot answers each customer once;
- a spike of reports spread over both → one draft and one staff alert, not one per node;
- a promised update comes due → one reminder although both nodes run a scheduler; `kill -9` the
  one holding the scheduler lock → the other takes over and fires the next job;
- `serve --telegram-polling` on both → only one node calls getUpdates at a time (Telegram ends
  the older of two concurrent calls with 409); `kill -9` it → the other polls.

Every wait is bounded (a deadline on a database or peer poll); nothing asserts a duration.
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
import psutil
import pytest
from sqlalchemy import func, text, update
from sqlmodel import col, select

from broadcaster.config import Settings, load_settings
from broadcaster.db import SessionFactory, create_engine, session_factory
from broadcaster.election import poller_lock_key
from broadcaster.models import Conversation, Delivery, InboundRecord, Incident, Message, ScheduledRun, utcnow
from broadcaster.schedule.runner import ADVISORY_LOCK_KEY
from tests.e2e.helpers import TOKEN, draft, open_
from tests.peers.smtp import SmtpPeer, free_port
from tests.peers.telegram import TelegramPeer

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

ROOT = Path(__file__).resolve().parent.parent.parent
PAYLOAD = json.loads((ROOT / "tests/payloads/telegram/status_question.json").read_text(encoding="utf-8"))
SECRET = "webhook-secret-for-tests"
ON_CALL = "oncall@shop.example"
STAFF_CHAT = "-1001234567890"
WAIT = 45.0  # the bound of every wait: generous for a loaded 2-core machine, never an assertion

T = TypeVar("T")


@dataclass
class Node:
    """One `broadcaster serve` process."""

    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def healthy(self) -> bool:
        """/healthz answers 200 (False while the node is not listening yet)."""
        try:
            return httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200
        except httpx.TransportError:
            return False


class Cluster:
    """Two nodes (or more) serving one config file; stopped (SIGINT, then SIGKILL) on exit."""

    def __init__(self, tmp_path: Path, database_url: str, telegram: TelegramPeer, smtp: SmtpPeer) -> None:
        self.tmp_path = tmp_path
        self.config = tmp_path / "config.toml"
        self.config.write_text(
            f'[database]\nurl = "{database_url}"\n'
            '[server]\nhost = "127.0.0.1"\n'
            "[dispatch]\npoll_interval_seconds = 0.05\nbackoff_base_seconds = 0.2\n"
            "backoff_max_seconds = 1.0\n"
            "[schedule]\nsync_seconds = 0.2\n"
            f'[staff]\nemail = "{ON_CALL}"\ntelegram_chat_id = "{STAFF_CHAT}"\n'
            f'[channels.telegram]\ntoken = "{TOKEN}"\nbase_url = "{telegram.base_url}"\n'
            f'webhook_secret = "{SECRET}"\nrate_per_second = 0\nper_chat_interval_seconds = 0\n'
            "polling_timeout_seconds = 1\n"
            f'[channels.email]\nhost = "{smtp.host}"\nport = {smtp.port}\nsecurity = "none"\n',
            encoding="utf-8",
        )
        self.settings: Settings = load_settings(self.config)
        self.nodes: list[Node] = []

    def start(self, *extra: str) -> Node:
        port = free_port()
        log = self.tmp_path / f"node{len(self.nodes) + 1}.log"
        env = {**os.environ, "BROADCASTER_CONFIG": str(self.config)}
        command = [sys.executable, "-m", "broadcaster", "serve", "--port", str(port), *extra]
        with log.open("wb") as output:
            process = subprocess.Popen(command, cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                                       stdout=output, stderr=output)  # fmt: skip
        node = Node(process, port, log)
        self.nodes.append(node)
        return node

    def wait_healthy(self) -> None:
        """Until every started node answers /healthz (bounded)."""
        deadline = time.monotonic() + WAIT
        for node in self.nodes:
            while not node.healthy():
                assert node.process.poll() is None, node.output()[-3000:]
                assert time.monotonic() < deadline, node.output()[-3000:]
                time.sleep(0.1)

    def kill(self, node: Node) -> None:
        node.process.send_signal(signal.SIGKILL)
        node.process.wait(timeout=20)

    def stop(self) -> None:
        for node in self.nodes:
            if node.process.poll() is None:
                node.process.send_signal(signal.SIGINT)
        for node in self.nodes:
            try:
                node.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                node.process.kill()
                node.process.wait(timeout=10)

    def tracebacks(self) -> list[str]:
        return [node.output()[-3000:] for node in self.nodes if "Traceback" in node.output()]


@pytest.fixture
def cluster(
    pg_database_url: str, tmp_path: Path, telegram: TelegramPeer, smtp: SmtpPeer
) -> Iterator[Cluster]:
    nodes = Cluster(tmp_path, pg_database_url, telegram, smtp)
    try:
        yield nodes
    finally:
        nodes.stop()
    assert nodes.tracebacks() == []


@pytest.fixture
async def sessions(pg_database_url: str) -> AsyncIterator[SessionFactory]:
    engine = create_engine(pg_database_url)
    yield session_factory(engine)
    await engine.dispose()


def telegram_update(update_id: int, chat: int, message_id: int, text_: str) -> bytes:
    """The recorded status question's shape, for another customer and text."""
    update_ = copy.deepcopy(PAYLOAD)
    message = update_["message"]
    update_["update_id"] = update_id
    message["message_id"], message["text"], message["date"] = message_id, text_, int(time.time())
    message["from"]["id"] = message["chat"]["id"] = chat
    return json.dumps(update_).encode()


async def post_update(client: httpx.AsyncClient, node: Node, body: bytes) -> None:
    response = await client.post(
        f"{node.url}/webhooks/telegram",
        content=body,
        headers={"X-Telegram-Bot-Api-Secret-Token": SECRET, "Content-Type": "application/json"},
    )
    assert response.status_code == 200, response.text


async def eventually(probe: Callable[[], Awaitable[T]], done: Callable[[T], bool]) -> T:
    """`probe()` until `done` says yes, at most WAIT seconds; the last value either way."""
    deadline = time.monotonic() + WAIT
    while not done(value := await probe()) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    return value


async def count(sessions: SessionFactory, statement: Any) -> int:
    async with sessions() as session:
        return int((await session.exec(statement)).one())


def filed_messages() -> Any:
    return select(func.count()).select_from(Message).where(Message.direction == "in")


async def test_webhooks_spread_over_two_nodes_are_filed_once_and_answered_once(
    cluster: Cluster, sessions: SessionFactory, telegram: TelegramPeer
) -> None:
    settings = cluster.settings
    outage = draft("identified", "Le paiement échoue. Désolés, nous corrigeons.",
                   "Payment fails. Sorry, we are fixing it.")  # fmt: skip
    await open_(sessions, settings, outage, force=True)
    first, second = cluster.start(), cluster.start()
    cluster.wait_healthy()
    customers = [5_600_000 + n for n in range(40)]
    updates = []
    for n, chat in enumerate(customers):
        asked = telegram.add_customer_message(chat)
        updates.append(telegram_update(900_000 + n, chat, asked, "le site est en panne ?"))
    # New customers writing twice at once, one message to each node: one conversation, one answer.
    pairs = []
    for n in range(20):
        chat = 5_700_000 + n
        customers.append(chat)
        questions = [
            (telegram.add_customer_message(chat), text_) for text_ in ("allo ?", "is checkout down?")
        ]
        pairs.append([telegram_update(950_000 + 2 * n + k, chat, m, t) for k, (m, t) in enumerate(questions)])
    async with httpx.AsyncClient(timeout=30) as client:
        # Spread over both nodes, and every update delivered to the other node too, at the same time.
        await asyncio.gather(
            *(post_update(client, (first, second)[n % 2], body) for n, body in enumerate(updates)),
            *(post_update(client, (second, first)[n % 2], body) for n, body in enumerate(updates)),
        )
        for one, other in pairs:  # pair by pair: both nodes file at the same moment
            await asyncio.gather(post_update(client, first, one), post_update(client, second, other))
    expected = len(updates) + 2 * len(pairs)
    assert await eventually(lambda: count(sessions, filed_messages()), lambda n: n >= expected) == expected
    assert await count(sessions, select(func.count()).select_from(InboundRecord)) == expected
    await eventually(
        lambda: asyncio.sleep(0, [c for c in customers if not telegram.texts(c)]), lambda left: not left
    )
    # Let any duplicate answer arrive: every node's outbox is empty once the answers are sent.
    await eventually(lambda: count(sessions, outbox_waiting()), lambda n: n == 0)
    answers = {chat: len(telegram.texts(chat)) for chat in customers}
    assert answers == dict.fromkeys(customers, 1)
    assert await count(sessions, select(func.count()).select_from(Conversation)) == len(customers)


def outbox_waiting() -> Any:
    """Outbox rows not sent yet: none left means any duplicate answer has arrived too."""
    return select(func.count()).select_from(Delivery).where(col(Delivery.status).in_(["pending", "sending"]))


async def test_a_spike_spread_over_two_nodes_drafts_once_and_alerts_the_staff_once(
    cluster: Cluster, sessions: SessionFactory, telegram: TelegramPeer, smtp: SmtpPeer
) -> None:
    first, second = cluster.start(), cluster.start()
    cluster.wait_healthy()
    threshold = cluster.settings.inbox.spike_threshold
    customers = [7_700_000 + n for n in range(3 * threshold)]
    async with httpx.AsyncClient(timeout=30) as client:
        bodies = []
        for n, chat in enumerate(customers):
            asked = telegram.add_customer_message(chat)
            bodies.append(
                telegram_update(800_000 + n, chat, asked, "Le site est en panne, je ne peux pas payer")
            )
        await asyncio.gather(*(post_update(client, (first, second)[n % 2], b) for n, b in enumerate(bodies)))
    filed = await eventually(lambda: count(sessions, filed_messages()), lambda n: n >= len(customers))
    assert filed == len(customers)
    await eventually(lambda: asyncio.sleep(0, telegram.texts(STAFF_CHAT)), bool)
    await eventually(lambda: count(sessions, outbox_waiting()), lambda n: n == 0)
    drafts = select(func.count()).select_from(Incident).where(Incident.status == "draft")
    assert await count(sessions, drafts) == 1
    assert len(telegram.texts(STAFF_CHAT)) == 1
    assert smtp.wait_for(1, WAIT)
    assert [rcpts for _, rcpts, _ in smtp.messages] == [[ON_CALL]]


async def lock_holder(sessions: SessionFactory, cluster: Cluster, key: int) -> Node | None:
    """The live node whose database connection holds the advisory lock `key` (by its client port)."""
    statement = text(
        "SELECT a.client_port FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
        "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
        "AND ((l.classid::bigint << 32) | l.objid::bigint) = :key"
    )
    async with sessions() as session:
        ports = {port for (port,) in await session.exec(statement, params={"key": key})}  # type: ignore[call-overload]
    for node in cluster.nodes:
        if node.process.poll() is None:
            local = {c.laddr.port for c in psutil.Process(node.process.pid).net_connections("tcp")}
            if local & ports:
                return node
    return None


async def promise_due(sessions: SessionFactory, settings: Settings) -> int:
    """An open incident whose promised next update was due a minute ago."""
    published = await open_(
        sessions, settings, draft("investigating", "Le paiement est indisponible. Nous enquêtons.",
                                  "Payment is down. We are investigating."), force=True
    )  # fmt: skip
    async with sessions() as session:
        await session.exec(
            update(Incident)
            .where(col(Incident.id) == published.incident.id)
            .values(next_update_at=utcnow() - timedelta(minutes=1))
        )
        await session.commit()
    assert published.incident.id is not None
    return published.incident.id


async def runs_of(sessions: SessionFactory, incident_id: int) -> list[str]:
    async with sessions() as session:
        rows = await session.exec(select(ScheduledRun).where(ScheduledRun.incident_id == incident_id))
        return [run.outcome for run in rows]


async def test_one_scheduler_fires_each_job_once_and_the_other_node_takes_over_after_kill_9(
    cluster: Cluster, sessions: SessionFactory, telegram: TelegramPeer
) -> None:
    settings = cluster.settings
    cluster.start(), cluster.start()
    cluster.wait_healthy()
    holder = await eventually(
        lambda: lock_holder(sessions, cluster, ADVISORY_LOCK_KEY), lambda node: node is not None
    )
    assert holder is not None, "no node took the scheduler lock"
    first = await promise_due(sessions, settings)
    assert await eventually(lambda: runs_of(sessions, first), bool) == ["done"]
    await eventually(lambda: asyncio.sleep(0, telegram.texts(STAFF_CHAT)), bool)
    # Killed once the reminder is recorded as sent: a node killed between Telegram's answer and
    # that write has its row sent again after the lease (at least once), which is not this test's.
    await eventually(lambda: count(sessions, outbox_waiting()), lambda n: n == 0)
    cluster.kill(holder)
    survivor = await eventually(
        lambda: lock_holder(sessions, cluster, ADVISORY_LOCK_KEY), lambda node: node not in (None, holder)
    )
    assert survivor is not None and survivor is not holder
    second = await promise_due(sessions, settings)
    assert await eventually(lambda: runs_of(sessions, second), bool) == ["done"]
    assert await runs_of(sessions, first) == ["done"]  # the new scheduler did not fire it again
    await eventually(lambda: asyncio.sleep(0, telegram.texts(STAFF_CHAT)), lambda texts: len(texts) >= 2)
    await eventually(lambda: count(sessions, outbox_waiting()), lambda n: n == 0)
    assert len(telegram.texts(STAFF_CHAT)) == 2  # one reminder per promise, not one per node
    cluster.nodes.remove(holder)  # killed on purpose: its log ends mid-line, not in a traceback


async def test_with_telegram_polling_one_node_polls_and_the_other_takes_over_after_kill_9(
    cluster: Cluster, sessions: SessionFactory, telegram: TelegramPeer
) -> None:
    cluster.start("--telegram-polling"), cluster.start("--telegram-polling")
    cluster.wait_healthy()
    chats = [6_100_000 + n for n in range(10)]
    for chat in chats:
        telegram.queue_message(chat, "/status")
    await eventually(
        lambda: asyncio.sleep(0, [c for c in chats if not telegram.texts(c)]), lambda left: not left
    )
    # Long polls of 1 s: over several of them, two nodes polling would overlap (a 409 each time).
    await eventually(lambda: asyncio.sleep(0, len(telegram.get_updates_calls)), lambda calls: calls >= 6)
    assert telegram.get_updates_conflicts == 0  # never two getUpdates at once: one node polls
    key = poller_lock_key("telegram:updates")
    holder = await lock_holder(sessions, cluster, key)
    assert holder is not None, "no node holds the Telegram poller's lock"
    cluster.kill(holder)
    survivor = await eventually(
        lambda: lock_holder(sessions, cluster, key), lambda node: node not in (None, holder)
    )
    assert survivor is not None and survivor is not holder
    late = 6_200_000
    telegram.queue_message(late, "/status")
    await eventually(lambda: asyncio.sleep(0, telegram.texts(late)), bool)
    await eventually(lambda: count(sessions, outbox_waiting()), lambda n: n == 0)
    assert {chat: len(telegram.texts(chat)) for chat in [*chats, late]} == dict.fromkeys([*chats, late], 1)
    assert telegram.get_updates_conflicts <= 1  # at most the dead node's call, ended by the survivor's
    cluster.nodes.remove(holder)
