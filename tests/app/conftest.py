"""Fixtures for the app tests: real PostgreSQL and Redis servers, started per session.

Needs Debian's ``postgresql`` and ``redis-server`` packages; no service is used, each
server runs from a temporary directory on a random loopback port.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
import pytest_asyncio
import redis
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from fastapi_fleet_app import migrate
from fastapi_fleet_app.app import create_app
from fastapi_fleet_app.settings import Settings
from fleet.bench.throwaway import PostgresServer, RedisServer

# Metrics must be single-process in this test process, whatever the caller's env says.
os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    with PostgresServer() as server:
        migrate.upgrade(server.url)
        yield server


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    with RedisServer() as server:
        yield server


@pytest.fixture
def clean(postgres: PostgresServer, redis_server: RedisServer) -> None:
    """Empty tables and cache; restart a server a previous test left stopped."""
    if not (postgres.data / "postmaster.pid").exists():
        postgres.start()
    with psycopg.connect(postgres.url, autocommit=True) as conn:
        conn.execute("TRUNCATE items, idempotency_keys RESTART IDENTITY")
    client = redis.Redis.from_url(redis_server.url)
    client.flushdb()
    client.close()


@pytest.fixture
def log_file(tmp_path: Path) -> Path:
    return tmp_path / "app.log"


@pytest.fixture
def settings(clean: None, postgres: PostgresServer, redis_server: RedisServer, log_file: Path) -> Settings:
    return Settings(
        database_url=postgres.url,
        redis_url=redis_server.url,
        db_pool_min_size=1,
        db_pool_max_size=4,
        db_pool_timeout_seconds=1,
        redis_timeout_seconds=0.3,
        cache_retry_seconds=0.3,
        ready_timeout_seconds=0.5,
        max_body_bytes=4096,
        log_file=str(log_file),
        release="9.9.9-test",
    )


@pytest_asyncio.fixture
async def app(settings: Settings) -> AsyncIterator[FastAPI]:
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest_asyncio.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://app.test") as http:
        yield http


LogReader = Callable[[Path], list[dict[str, object]]]
SampleReader = Callable[..., float]


def _read_log(path: Path) -> list[dict[str, object]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def _sample(text: str, name: str, **labels: str) -> float:
    """Sum of the samples called ``name`` whose labels include ``labels``."""
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    )


@pytest.fixture
def read_log() -> LogReader:
    """Parse every line of a JSON log file (fails on a line that is not JSON)."""
    return _read_log


@pytest.fixture
def sample() -> SampleReader:
    """Read one value out of Prometheus exposition text."""
    return _sample
