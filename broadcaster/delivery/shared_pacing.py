"""One pacing budget for every worker of a deployment: Redis when `[dispatch] redis_url` is set,
else the PostgreSQL database, else (SQLite, one process) each worker's own `SlidingWindow`.

Two shapes of budget, both kept on the store's clock (never a node's, which may be skewed):

- **admitted** (a bot's 30/s, 1/s to a chat): `admit` hands out the next slot, spaced
  `window / limit` (+3 %) apart so there is no burst ever, together with a place in the scope's
  sliding log, where the send counts from its slot until `window` after its response (`settle`):
  however late it leaves or slowly it is answered, the provider never sees `limit + 1` in a window.
  One atomic step (a Lua script; a PostgreSQL function), then the worker sleeps until its slot.
- **counted** (20 a minute to a group, X's 100 posts per 15 minutes): `count`, the log alone, at
  most `limit` in any `window`, bursts allowed, all of a reservation or nothing.

Why not the `limits` package: its moving window is stamped with each client's own clock, has no
PostgreSQL storage, and can only say yes or no, while a worker needs "your turn is in 40 ms" and a
pause the provider imposed that holds for every node.

When the store does not answer, the worker paces itself alone (its local window, same limits),
says so once in the log, tries the store again every `RETRY_STORE_SECONDS`, and says when it is
back: a send is never lost nor held on the store's account.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Protocol, TypeVar

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from channels.pacing import Pacer, SlidingWindow, pacer_for_rate

__all__ = [
    "MARGIN",
    "deployment_pacing",
    "pacer_for",
    "PaceStore",
    "PostgresPaceStore",
    "RedisPaceStore",
    "SharedPacing",
    "SharedWindow",
    "StoreDown",
]

log = logging.getLogger(__name__)

MARGIN = 0.03  # a spaced grant is 3 % wider than the limit: arrival jitter never makes N + 1
RETRY_STORE_SECONDS = 5.0
IN_FLIGHT_SECONDS = 120.0  # a send whose worker died counts this long before its window
IDLE_TTL_SECONDS = 3_600.0  # a scope untouched this long is forgotten (one chat's row)

T = TypeVar("T")


class StoreDown(Exception):
    """The shared store did not answer; the message names the store, never its credentials."""


class PaceStore(Protocol):
    """Where a deployment's budgets live."""

    label: str  # for logs and `doctor`: "redis 127.0.0.1:6379/1", "postgresql"

    async def hold_off(self, scope: str, seconds: float) -> None:
        """Grant nothing in `scope` for `seconds` (a 429), then resume at the even pace."""
        ...

    async def admit(
        self, scope: str, spacing: float, limit: int, window: float, cost: int, hold: float
    ) -> tuple[float, str]:
        """The next slot of `scope`, spaced `spacing` per message, and `cost` places in its
        log (`<scope>:sent`) free by then, counted from the slot until `window` after `hold` (or
        `settle`). (seconds until the slot, reservation); else (seconds to try again, "")."""
        ...

    async def count(
        self, scope: str, limit: int, window: float, cost: int, hold: float = 0.0
    ) -> tuple[float, str]:
        """(0, reservation) when `cost` more fit the last `window`: they count from now until
        `window` after `hold` seconds (or after `settle`); else (seconds until they fit, "")."""
        ...

    async def settle(self, scope: str, reservation: str, hold: float, ended_after: float) -> None:
        """The sends of `reservation` (counted for `hold` after their slot) ended `ended_after`
        seconds after it: they count until `window` after that, whenever this call arrives."""
        ...

    async def refund(self, scope: str, reservation: str, cost: int) -> None:
        """Give back `cost` grants of `reservation` that were not used."""
        ...

    async def ping(self) -> None: ...

    async def aclose(self) -> None: ...


# ----- Redis ---------------------------------------------------------------------------------

_HOLD_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local nxt = tonumber(redis.call('GET', KEYS[1]) or '0')
redis.call('SET', KEYS[1], string.format('%.6f', math.max(nxt, now + tonumber(ARGV[1]))), 'PX', ARGV[2])
return 1
"""

_COUNT_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local limit = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%.6f', now - window))
local used = redis.call('ZCARD', KEYS[1])
local excess = used + cost - limit
if excess > 0 then
  local oldest = redis.call('ZRANGE', KEYS[1], excess - 1, excess - 1, 'WITHSCORES')
  return string.format('%.6f', tonumber(oldest[2]) + window - now)
end
local hold = tonumber(ARGV[5])
for i = 1, cost do
  redis.call('ZADD', KEYS[1], now + hold, ARGV[4] .. ':' .. i)
end
redis.call('PEXPIRE', KEYS[1], math.ceil((window + hold) * 1000) + 1000)
return '0'
"""

_ADMIT_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local spacing, cost, limit = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local window, hold = tonumber(ARGV[4]), tonumber(ARGV[5])
local slot = math.max(tonumber(redis.call('GET', KEYS[1]) or '0'), now)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', string.format('%.6f', slot - window))
local excess = redis.call('ZCARD', KEYS[2]) + cost - limit
if excess > 0 then
  local oldest = redis.call('ZRANGE', KEYS[2], excess - 1, excess - 1, 'WITHSCORES')
  return {'', string.format('%.6f', math.max(tonumber(oldest[2]) + window - now, 0.001))}
end
redis.call('SET', KEYS[1], string.format('%.6f', slot + spacing * cost), 'PX', ARGV[7])
for i = 1, cost do
  redis.call('ZADD', KEYS[2], slot + hold, ARGV[6] .. ':' .. i)
end
redis.call('PEXPIRE', KEYS[2], math.ceil((window + hold) * 1000) + 1000)
return {'ok', string.format('%.6f', slot - now)}
"""

_SETTLE_LUA = """
local shift = tonumber(ARGV[1])
for i = 2, #ARGV do
  local score = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if score then
    redis.call('ZADD', KEYS[1], 'XX', tonumber(score) + shift, ARGV[i])
  end
end
return 1
"""


class RedisPaceStore:
    """Budgets in Redis: one key per scope, scripts run atomically on Redis's clock (`TIME`)."""

    def __init__(self, url: str, prefix: str = "broadcaster:pace:") -> None:
        import redis.asyncio as redis

        self._client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        kwargs = self._client.connection_pool.connection_kwargs
        self.label = f"redis {kwargs.get('host', '?')}:{kwargs.get('port', '?')}/{kwargs.get('db', 0)}"
        self._prefix = prefix
        self._hold = self._client.register_script(_HOLD_LUA)
        self._count = self._client.register_script(_COUNT_LUA)
        self._settle = self._client.register_script(_SETTLE_LUA)
        self._admit = self._client.register_script(_ADMIT_LUA)

    def __repr__(self) -> str:
        return f"RedisPaceStore({self.label})"

    async def _run(self, call: Awaitable[T]) -> T:
        from redis.exceptions import RedisError

        try:
            return await call
        except (RedisError, OSError) as exc:
            raise StoreDown(f"{self.label}: {type(exc).__name__}") from None

    async def hold_off(self, scope: str, seconds: float) -> None:
        await self._run(self._hold(keys=[self._prefix + scope], args=[seconds, _ttl_ms(seconds)]))

    async def count(
        self, scope: str, limit: int, window: float, cost: int, hold: float = 0.0
    ) -> tuple[float, str]:
        reservation = uuid.uuid4().hex
        key = self._prefix + "log:" + scope
        args: list[str | float] = [limit, window, cost, reservation, hold]
        wait = float(await self._run(self._count(keys=[key], args=args)))
        if wait > 0:
            return wait, ""
        return 0.0, ",".join(f"{reservation}:{i}" for i in range(1, cost + 1))  # the log's members

    async def admit(
        self, scope: str, spacing: float, limit: int, window: float, cost: int, hold: float
    ) -> tuple[float, str]:
        reservation = uuid.uuid4().hex
        keys = [self._prefix + scope, self._prefix + "log:" + scope + ":sent"]
        args: list[str | float] = [spacing, cost, limit, window, hold, reservation, _ttl_ms(spacing * cost)]
        admitted, wait = await self._run(self._admit(keys=keys, args=args))
        if not admitted:
            return float(wait), ""
        return float(wait), ",".join(f"{reservation}:{i}" for i in range(1, cost + 1))

    async def settle(self, scope: str, reservation: str, hold: float, ended_after: float) -> None:
        members: list[str | float] = [m for m in reservation.split(",") if m]
        if members:
            shift = max(ended_after, 0.0) - hold
            await self._run(self._settle(keys=[self._prefix + "log:" + scope], args=[shift, *members]))

    async def refund(self, scope: str, reservation: str, cost: int) -> None:
        members = [m for m in reservation.split(",") if m][:cost]
        if members:
            await self._run(self._client.zrem(self._prefix + "log:" + scope, *members))

    async def ping(self) -> None:
        await self._run(self._client.ping())

    async def aclose(self) -> None:
        await self._client.aclose()


# ----- PostgreSQL ----------------------------------------------------------------------------

_PG_HOLD = text(
    """
    WITH clock AS (SELECT extract(epoch FROM clock_timestamp())::float8 AS now)
    INSERT INTO pace_slot (scope, next_grant, expires_at, ring)
    SELECT :scope, clock.now + :seconds, clock.now + :seconds + :ttl, '' FROM clock
    ON CONFLICT (scope) DO UPDATE SET
        next_grant = greatest(pace_slot.next_grant, excluded.next_grant),
        expires_at = greatest(pace_slot.next_grant, excluded.next_grant) + :ttl
    """
)

# A moving-window log as `limit` rows of one `ring`, each holding when its send leaves the
# window: a reservation takes `cost` rows free now (none taken if fewer are), skipping the rows
# another worker is taking at the same moment.
_PG_LOG_ROWS = text(
    """
    INSERT INTO pace_slot (scope, next_grant, expires_at, ring)
    SELECT :ring || '#' || i, 0, extract(epoch FROM clock_timestamp()) + :ttl, :ring
    FROM generate_series(1, :limit) AS i
    ON CONFLICT (scope) DO NOTHING
    """
)
_PG_LOG_TAKE = text(
    """
    WITH clock AS (SELECT extract(epoch FROM clock_timestamp())::float8 AS now),
    free AS (
        SELECT pace_slot.scope FROM pace_slot, clock
        WHERE pace_slot.ring = :ring AND pace_slot.next_grant <= clock.now
        ORDER BY pace_slot.next_grant LIMIT :cost FOR UPDATE OF pace_slot SKIP LOCKED
    )
    UPDATE pace_slot SET next_grant = clock.now + :hold + :window,
        expires_at = clock.now + :hold + :window + :ttl
    FROM free, clock WHERE pace_slot.scope = free.scope
    RETURNING pace_slot.scope
    """
)
_PG_LOG_WAIT = text(
    """
    SELECT count(*) AS rows, coalesce(max(next_grant) FILTER (WHERE rank = :cost), 0)
        - extract(epoch FROM clock_timestamp())::float8 AS wait
    FROM (SELECT next_grant, row_number() OVER (ORDER BY next_grant) AS rank
          FROM pace_slot WHERE ring = :ring) AS log
    """
)
_PG_LOG_SETTLE = text("UPDATE pace_slot SET next_grant = next_grant + :shift WHERE scope = ANY(:scopes)")
_PG_ADMIT = text(  # the function of migration 0011
    "SELECT wait, taken FROM pace_admit(:scope, :ring, :spacing, :limit, :window, :cost, :hold, :ttl)"
)
_PG_LOG_GIVE_BACK = text("UPDATE pace_slot SET next_grant = 0 WHERE scope = ANY(:scopes)")
_PG_FORGET = text("DELETE FROM pace_slot WHERE expires_at < extract(epoch FROM clock_timestamp())")


class PostgresPaceStore:
    """Budgets in the deployment's PostgreSQL (`pace_slot`), on the database's clock."""

    label = "postgresql"

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine  # a moving window's reservation: all of it or nothing
        # The other steps are one statement each: autocommit spares a BEGIN and a COMMIT round trip.
        self._autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
        self._last_forget = -math.inf

    def __repr__(self) -> str:
        return "PostgresPaceStore()"

    @asynccontextmanager
    async def _statement(self) -> AsyncIterator[object]:
        try:
            async with self._autocommit.connect() as connection:
                yield connection
        except (SQLAlchemyError, OSError) as exc:
            raise StoreDown(f"{self.label}: {type(exc).__name__}") from None

    async def hold_off(self, scope: str, seconds: float) -> None:
        async with self._statement() as connection:
            await connection.execute(  # type: ignore[attr-defined]
                _PG_HOLD, {"scope": scope, "seconds": seconds, "ttl": IDLE_TTL_SECONDS}
            )

    async def count(
        self, scope: str, limit: int, window: float, cost: int, hold: float = 0.0
    ) -> tuple[float, str]:
        take = {"ring": scope, "cost": cost, "window": window, "hold": hold, "ttl": IDLE_TTL_SECONDS}
        try:
            async with self._engine.connect() as connection:
                for _ in range(2):  # a second time once the log's rows are made
                    taken = list((await connection.execute(_PG_LOG_TAKE, take)).scalars())
                    if len(taken) == cost:
                        await connection.commit()
                        return 0.0, ",".join(taken)
                    await connection.rollback()  # all of it or nothing
                    log = (await connection.execute(_PG_LOG_WAIT, {"ring": scope, "cost": cost})).one()
                    if log.rows >= limit:
                        return max(float(log.wait), 0.001) if log.rows >= cost else window, ""
                    rows = {"ring": scope, "limit": limit, "ttl": window + IDLE_TTL_SECONDS}
                    await connection.execute(_PG_LOG_ROWS, rows)
                    await connection.commit()
        except (SQLAlchemyError, OSError) as exc:
            raise StoreDown(f"{self.label}: {type(exc).__name__}") from None
        return window, ""

    async def admit(
        self, scope: str, spacing: float, limit: int, window: float, cost: int, hold: float
    ) -> tuple[float, str]:
        admit = {"scope": scope, "ring": scope + ":sent", "spacing": spacing, "limit": limit}
        admit |= {"window": window, "cost": cost, "hold": hold, "ttl": IDLE_TTL_SECONDS}
        async with self._statement() as connection:
            row = (await connection.execute(_PG_ADMIT, admit)).one()  # type: ignore[attr-defined]
        await self._forget_idle_rows()
        return max(float(row.wait), 0.0), ",".join(row.taken)

    async def settle(self, scope: str, reservation: str, hold: float, ended_after: float) -> None:
        scopes = [s for s in reservation.split(",") if s]
        if scopes:
            shift = max(ended_after, 0.0) - hold
            async with self._statement() as connection:
                await connection.execute(_PG_LOG_SETTLE, {"scopes": scopes, "shift": shift})  # type: ignore[attr-defined]

    async def refund(self, scope: str, reservation: str, cost: int) -> None:
        scopes = [s for s in reservation.split(",") if s][:cost]
        if scopes:
            async with self._statement() as connection:
                await connection.execute(_PG_LOG_GIVE_BACK, {"scopes": scopes})  # type: ignore[attr-defined]

    async def _forget_idle_rows(self) -> None:
        """Once a minute, the rows of chats idle for an hour go (a broadcast leaves one per chat)."""
        if time.monotonic() - self._last_forget < 60:
            return
        self._last_forget = time.monotonic()
        async with self._statement() as connection:
            await connection.execute(_PG_FORGET)  # type: ignore[attr-defined]

    async def ping(self) -> None:
        async with self._statement() as connection:
            await connection.execute(text("SELECT 1 FROM pace_slot LIMIT 1"))  # type: ignore[attr-defined]

    async def aclose(self) -> None:
        """The engine belongs to the deployment's sessions: nothing to close here."""


def _ttl_ms(span: float) -> int:
    return math.ceil((span + IDLE_TTL_SECONDS) * 1000)


# ----- pacers over a store -------------------------------------------------------------------


class SharedPacing:
    """A deployment's store, with the fallback to local pacing while it is down.

    `window(scope, limit, window)` is the pacer for a rate (`turn`/`pause`), a chat's included;
    `store.count` is what a group's minute and X's budget draw from.
    """

    def __init__(self, store: PaceStore, clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        self._clock = clock
        self._down_since: float | None = None
        self._retry_at = -math.inf
        self._fallbacks: dict[str, SlidingWindow] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def down(self) -> bool:
        return self._down_since is not None

    async def call(self, step: Callable[[], Awaitable[T]]) -> T | None:
        """`step` on the store; None while the store is down (the caller paces locally)."""
        if self._down_since is not None and self._clock() < self._retry_at:
            return None
        try:
            result = await step()
        except StoreDown as exc:
            if self._down_since is None:
                self._down_since = self._clock()
                log.warning("pacing store down: %s; each worker paces itself until it answers", exc)
            self._retry_at = self._clock() + RETRY_STORE_SECONDS
            return None
        if self._down_since is not None:
            down_for = self._clock() - self._down_since
            self._down_since = None
            log.info(
                "pacing store back: %s (down %.0f s); one budget for the deployment again",
                self.store.label,
                down_for,
            )
        return result

    def fallback(self, scope: str, limit: int, window: float, *, spaced: bool = True) -> SlidingWindow:
        """The local window a scope falls back to (kept for the few scopes with a rate)."""
        local = self._fallbacks.get(scope)
        if local is None:
            local = SlidingWindow(limit, window, spaced=spaced)
            if len(self._fallbacks) < 10_000:
                self._fallbacks[scope] = local
        return local

    def window(self, scope: str, limit: int, window: float) -> SharedWindow:
        return SharedWindow(self, scope, limit, window)

    async def take(self, scope: str, limit: int, window: float, cost: int) -> tuple[float, str] | None:
        """`cost` more in `scope`'s last `window`, for the whole deployment: (0, reservation) when
        they fit, else (seconds until they do, ""); None while the store is down."""
        return await self.call(lambda: self.store.count(scope, limit, window, cost))

    async def give_back(self, scope: str, reservation: str, cost: int) -> None:
        """Return `cost` of what `take` reserved (posts not made)."""
        await self.call(lambda: self.store.refund(scope, reservation, cost))

    def hold_off(self, scope: str, seconds: float) -> None:
        """A 429 for every worker: written in the background (the caller is not async)."""
        self.in_background(self._hold_off(scope, seconds))

    def in_background(self, step: Coroutine[object, object, None]) -> None:
        """Run `step` without waiting for it (`aclose` does)."""
        task = asyncio.get_running_loop().create_task(step)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _hold_off(self, scope: str, seconds: float) -> None:
        await self.call(lambda: self.store.hold_off(scope, seconds))

    async def aclose(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.store.aclose()


class SharedWindow:
    """`Pacer` for one rate of the deployment: at most `limit` in any `window`, spaced, no burst;
    a pause holds for every worker.

    Each send gets the next slot of the deployment's schedule and a place in its log, where it
    counts from its slot until `window` after its response: however late it goes out or slowly it
    is answered, the provider never sees `limit + 1` in a window. While the store is down, this
    worker's own window (the same limits, counted the same way) paces it alone.
    """

    def __init__(self, pacing: SharedPacing, scope: str, limit: int, window: float) -> None:
        self._pacing = pacing
        self.scope = scope
        self.limit = limit
        self.window = window
        self.spacing = window / limit
        self._local = pacing.fallback(scope, limit, window)
        # This worker's sends wait for their slots one after another, as in its own window: a
        # queue of reservations far ahead would hold the log's places and turn the others away.
        self._admitting = asyncio.Lock()

    def pause(self, seconds: float) -> None:
        self._local.pause(seconds)
        self._pacing.hold_off(self.scope, seconds)  # every worker's next slot is after the pause

    @asynccontextmanager
    async def turn(self, cost: int = 1) -> AsyncIterator[None]:
        cost = min(max(cost, 1), self.limit)
        async with self._admitting:
            admitted = await self._admit(cost)
        if admitted is None:  # the store is down: this worker's own window, same limits
            async with self._local.turn(cost):
                yield
            return
        reservation, slot = admitted
        try:
            yield
        finally:  # written in the background: the place it frees is a window away anyway
            self._pacing.in_background(self._settle(reservation, time.monotonic() - slot))

    @property
    def _log(self) -> str:
        return f"{self.scope}:sent"

    async def _admit(self, cost: int) -> tuple[str, float] | None:
        """Wait for this send's slot in the deployment's budget, counted in its log until `window`
        after it ends (a late send, a slow answer): (reservation, the slot by this worker's clock,
        never later than the store's, so the send's end is never placed early); None while the
        store is down."""
        store, spacing = self._pacing.store, self.spacing * (1 + MARGIN)
        for _ in range(10_000):  # each refusal waits for a place: a window, or a slot
            asked = time.monotonic()  # the store evaluated it after this: the slot is no earlier
            answer = await self._pacing.call(
                lambda: store.admit(self.scope, spacing, self.limit, self.window, cost, IN_FLIGHT_SECONDS)
            )
            if answer is None:
                return None
            wait, reservation = answer
            if reservation:
                if wait > 0:
                    await asyncio.sleep(wait)  # our slot: the provider's pace
                return reservation, asked + wait
            # Refused: the log is full. A place a send still holds (`wait` beyond one window: it
            # is in flight) frees once that send ends, so look again a slot later.
            await asyncio.sleep(wait if wait <= self.window else self.spacing)
        return None

    async def _settle(self, reservation: str, ended_after: float) -> None:
        """The send ended `ended_after` its slot: it counts until `window` after that."""
        store = self._pacing.store
        await self._pacing.call(lambda: store.settle(self._log, reservation, IN_FLIGHT_SECONDS, ended_after))


def deployment_pacing(redis_url: str | None, engine: AsyncEngine | None) -> SharedPacing | None:
    """Redis when configured, else PostgreSQL when that is the database, else None (SQLite)."""
    if redis_url:
        return SharedPacing(RedisPaceStore(redis_url))
    if engine is not None and engine.dialect.name == "postgresql":
        return SharedPacing(PostgresPaceStore(engine))
    return None


def pacer_for(pacing: SharedPacing | None, scope: str, rate_per_second: float) -> Pacer:
    """A channel's `rate_per_second` as the deployment's shared window, or a local one."""
    local = pacer_for_rate(rate_per_second)
    if pacing is None or not isinstance(local, SlidingWindow):
        return local
    return pacing.window(scope, local.limit, local.window)
