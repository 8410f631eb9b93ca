"""PostgreSQL stopped and started again under a running app."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import httpx
import pytest

from fleet.bench.throwaway import PostgresServer

pytestmark = pytest.mark.asyncio

ITEMS = "/api/v1/items"


async def test_pool_recovers_after_restart(
    client: httpx.AsyncClient, postgres: PostgresServer, sample: Callable[..., float]
) -> None:
    cached = (await client.post(ITEMS, json={"name": "cached"})).json()
    await client.get(f"{ITEMS}/{cached['id']}")  # now in Redis
    before = (await client.get("/metrics")).text

    postgres.stop()
    try:
        down = await client.get(ITEMS)
        assert down.status_code == 503
        assert down.json() == {"detail": "database unavailable"}
        assert down.headers["retry-after"] == "1"
        assert (await client.post(ITEMS, json={"name": "lost"})).status_code == 503
        # A cache hit needs no database.
        assert (await client.get(f"{ITEMS}/{cached['id']}")).json() == cached
        ready = await client.get("/ready")
        assert ready.status_code == 503
        assert ready.json()["checks"]["postgres"].startswith("error")
        assert ready.json()["checks"]["redis"] == "ok"
        assert (await client.get("/health")).json()["status"] == "ok"
        after = (await client.get("/metrics")).text
        for name, labels in (
            ("app_db_errors_total", {}),
            ("app_http_requests_total", {"route": ITEMS, "status": "503"}),
        ):
            assert sample(after, name, **labels) - sample(before, name, **labels) == 2, name
    finally:
        postgres.start()

    deadline = time.monotonic() + 20
    while (response := await client.get(ITEMS)).status_code != 200:
        assert time.monotonic() < deadline, "pool did not recover"
        await asyncio.sleep(0.2)
    assert [item["name"] for item in response.json()["items"]] == ["cached"]
    assert (await client.post(ITEMS, json={"name": "after"})).status_code == 201
    assert (await client.get("/ready")).status_code == 200
