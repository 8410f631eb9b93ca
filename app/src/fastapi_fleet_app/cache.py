"""Read-through Redis cache for items that degrades to PostgreSQL when Redis fails."""

from __future__ import annotations

import logging
import time
from typing import cast

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from fastapi_fleet_app.metrics import CACHE_REQUESTS, DEGRADED
from fastapi_fleet_app.settings import Settings

log = logging.getLogger(__name__)

_ERRORS = (RedisError, OSError)
# Ids whose invalidation failed are remembered up to this many and deleted on recovery.
_MAX_PENDING = 10_000


def create_redis(settings: Settings) -> Redis:
    """Client with short timeouts and no retry after a timeout: a slow Redis must not slow requests.

    A command on a pooled connection that Redis closed (a Redis restart while the worker sat
    idle) fails at once with a connection error; it is sent once more on a new connection,
    so a restarted Redis is not reported as failing. A timeout is never retried.
    """
    timeout = settings.redis_timeout_seconds
    pool = BlockingConnectionPool.from_url(
        settings.redis_url.get_secret_value(),
        max_connections=settings.redis_max_connections,
        timeout=timeout,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
        retry_on_error=[RedisConnectionError],
    )
    return Redis.from_pool(pool)


def _key(item_id: int) -> str:
    return f"fastapi-fleet:item:v1:{item_id}"


class ItemCache:
    """Cached JSON bodies of items by id.

    After a Redis failure the cache is bypassed for ``retry_seconds``; invalidations
    missed meanwhile are replayed before the cache is used again.
    """

    def __init__(self, client: Redis, ttl_seconds: int, retry_seconds: float) -> None:
        self._client = client
        self._ttl = ttl_seconds
        self._retry = retry_seconds
        self._down = False
        self._down_until = 0.0
        self._pending: set[int] = set()

    @property
    def enabled(self) -> bool:
        return self._ttl > 0

    async def get(self, item_id: int) -> bytes | None:
        """Cached body, or None on a miss, when disabled, or when Redis is failing."""
        if not self.enabled:
            return None
        if not await self._usable():
            CACHE_REQUESTS.labels("error").inc()
            return None
        try:
            value = cast(bytes | None, await self._client.get(_key(item_id)))
        except _ERRORS as exc:
            CACHE_REQUESTS.labels("error").inc()
            self._failed(exc, "get")
            return None
        CACHE_REQUESTS.labels("miss" if value is None else "hit").inc()
        return value

    async def set(self, item_id: int, body: bytes) -> None:
        if not self.enabled or not await self._usable():
            return
        try:
            await self._client.set(_key(item_id), body, ex=self._ttl)
        except _ERRORS as exc:
            self._failed(exc, "set")

    async def invalidate(self, item_id: int) -> None:
        """Drop a cached item after a write; remembered for later if Redis is failing."""
        if not self.enabled:
            return
        if await self._usable():
            try:
                await self._client.delete(_key(item_id))
                return
            except _ERRORS as exc:
                self._failed(exc, "invalidate")
        if len(self._pending) < _MAX_PENDING:
            self._pending.add(item_id)
        else:
            log.error("too many missed invalidations; stale items may be served until TTL")

    async def warm(self, connections: int) -> None:
        """Open the pool's connections now, before the worker serves.

        A worker that starts under load (a recycle) would otherwise open them all at once
        while it serves: dozens of TLS handshakes on a busy event loop took longer than the
        connect timeout, and every timeout bypassed the cache for ``retry_seconds`` (an item
        read under load hit the cache 76% of the time). A Redis that does not answer stops
        the warm-up at its first connect; the requests' own retries handle it from there.
        """
        if not self.enabled:
            return
        pool = self._client.connection_pool
        opened: list[AbstractConnection] = []
        try:
            for _ in range(connections):
                opened.append(await pool.get_connection())
        except _ERRORS as exc:
            log.warning("redis connections not opened ahead", extra={"error": f"{type(exc).__name__}: {exc}"})
        finally:
            for connection in opened:
                await pool.release(connection)

    async def ping(self) -> None:
        """Raise unless Redis answers PING."""
        await self._client.ping()

    async def close(self) -> None:
        await self._client.aclose()

    async def _usable(self) -> bool:
        if self._down and time.monotonic() < self._down_until:
            DEGRADED.labels("redis").inc()
            return False
        if self._pending:
            replay = set(self._pending)
            try:
                await self._client.delete(*(_key(i) for i in replay))
            except _ERRORS as exc:
                self._failed(exc, "replay")
                return False
            self._pending -= replay
            log.info("replayed missed cache invalidations", extra={"count": len(replay)})
        if self._down:
            self._down = False
            log.info("redis available again, cache re-enabled")
        return True

    def _failed(self, exc: BaseException, operation: str) -> None:
        DEGRADED.labels("redis").inc()
        if not self._down:
            log.warning(
                "redis failed, serving from PostgreSQL without cache",
                extra={"operation": operation, "error": f"{type(exc).__name__}: {exc}"},
            )
        self._down = True
        self._down_until = time.monotonic() + self._retry
