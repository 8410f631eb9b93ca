"""``fleet load steady``'s item mix is valid for the real app: every request as expected, every item stored.

A real Gunicorn with PostgreSQL and Redis on loopback; the mix's bodies and paths follow the
app's models, so nothing but 201 (POST) and 200 (GET, PATCH, /health) may come back, and its
Idempotency-Keys are the app's syntax.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from fleet.bench.throwaway import GunicornServer, PostgresServer, RedisServer, app_environment
from fleet.load import run_steady

RELEASE = "9.9.9-steady"


@pytest.fixture
def server(
    clean: None, postgres: PostgresServer, redis_server: RedisServer, log_file: Path
) -> Iterator[GunicornServer]:
    env = app_environment(
        postgres.url, redis_server.url, error_log=str(log_file), db_pool_min_size="1", release=RELEASE
    )
    with GunicornServer(env, workers=1) as running:
        yield running


def test_item_mix_against_the_app_fails_nothing_and_stores_every_item(server: GunicornServer, postgres) -> None:
    # Patient: a busy machine may answer slowly, but nothing may fail or be skipped.
    result = run_steady(server.base_url, rate=40, duration=1.5, timeout=30, max_in_flight=256)
    assert result.clean, result.line()
    assert result.sent == 60
    assert result.by_method["POST"] == 15
    assert result.by_method.get("PATCH", 0) >= 1  # PATCH slots read /health until the first item exists
    assert len(result.created_ids) == 15
    assert list(result.collected) == [RELEASE]
    assert result.collected[RELEASE] >= 15  # every fourth request asks /health
    with psycopg.connect(postgres.url) as conn:
        rows = conn.execute("SELECT id, name, description FROM items ORDER BY id").fetchall()
        keys = conn.execute("SELECT split_part(fingerprint, ' ', 1), count(*) FROM idempotency_keys GROUP BY 1")
        stored = dict(keys.fetchall())
    assert [row[0] for row in rows] == sorted(result.created_ids)
    assert all(name.startswith("fleet-load ") for _, name, _ in rows)
    assert sum(description.startswith("patched by request ") for _, _, description in rows) >= 1
    # Each POST and PATCH came with a key of its own, stored with its response.
    assert stored == {"POST": 15, "PATCH": result.by_method["PATCH"]}
