"""Prometheus metrics; multiprocess-aware when ``PROMETHEUS_MULTIPROC_DIR`` is set."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector
from psycopg_pool import AsyncConnectionPool

MULTIPROC_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"

HTTP_REQUESTS = Counter("app_http_requests", "HTTP requests handled.", ["method", "route", "status"])
HTTP_DURATION = Histogram(
    "app_http_request_duration_seconds",
    "HTTP request latency.",
    ["method", "route", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
HTTP_IN_PROGRESS = Gauge("app_http_requests_in_progress", "HTTP requests being handled.", multiprocess_mode="livesum")
DB_POOL_SIZE = Gauge("app_db_pool_size", "PostgreSQL connections open in the pools.", multiprocess_mode="livesum")
DB_POOL_AVAILABLE = Gauge(
    "app_db_pool_available", "Idle PostgreSQL connections in the pools.", multiprocess_mode="livesum"
)
DB_POOL_WAITING = Gauge(
    "app_db_pool_requests_waiting",
    "Requests waiting for a PostgreSQL connection.",
    multiprocess_mode="livesum",
)
DB_ERRORS = Counter("app_db_errors", "Requests failed because PostgreSQL was unavailable.")
CACHE_REQUESTS = Counter("app_cache_requests", "Item cache lookups.", ["result"])
IDEMPOTENT_REPLAYS = Counter(
    "app_idempotent_replays", "Keyed writes answered with the stored response of an earlier request."
)
DEGRADED = Counter("app_degraded", "Cache operations skipped because a dependency failed.", ["dependency"])
BUILD_INFO = Gauge(
    "app_build_info", "Running package version and release.", ["version", "release"], multiprocess_mode="livemax"
)


def observe_pool(pool: AsyncConnectionPool[Any]) -> None:
    """Publish this process's pool gauges."""
    stats = pool.get_stats()
    DB_POOL_SIZE.set(stats.get("pool_size", 0))
    DB_POOL_AVAILABLE.set(stats.get("pool_available", 0))
    DB_POOL_WAITING.set(stats.get("requests_waiting", 0))


async def observe_pool_forever(pool: AsyncConnectionPool[Any], interval: float) -> None:
    """Refresh the pool gauges every ``interval`` seconds until cancelled."""
    while True:
        observe_pool(pool)
        await asyncio.sleep(interval)


def render() -> bytes:
    """Exposition text, aggregated over all worker processes in multiprocess mode."""
    if os.environ.get(MULTIPROC_DIR_VARIABLE):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest(REGISTRY)
