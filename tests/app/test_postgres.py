"""PostgreSQL stopped and started again under a running app."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import httpx
import pytest

from fastapi_fleet_app.app import create_app
from fastapi_fleet_app.settings import Settings
from fleet.bench.throwaway import PostgresServer

pytestmark = pytest.mark.asyncio

ITEMS = "/api/v1/items"
RECONNECT_S = 2.0
# The reconnect timeout, a pool wait (1 s in these settings) and a margin for a busy machine.
BACK_WITHIN_S = 5.0


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


async def _first_success_after(client: httpx.AsyncClient, limit: float) -> float:
    """Seconds until GET /api/v1/items answers 200 (polling), at most ``limit``."""
    started = time.monotonic()
    while (await client.get(ITEMS)).status_code != 200:
        assert time.monotonic() - started < limit, f"no answer from the database within {limit} s"
        await asyncio.sleep(0.2)
    return time.monotonic() - started


async def test_back_soon_after_a_long_outage_with_requests_during_it(
    settings: Settings, postgres: PostgresServer
) -> None:
    """A long outage leaves no long backoff behind: the app answers within seconds of PostgreSQL.

    Requests during the outage make the pool retry with a doubling delay (1, 2, 4, 8 ... s).
    With psycopg_pool's own 300 s reconnect timeout, an outage of 17 s left the next attempt
    at about 31 s: 14 s more of 503s after PostgreSQL was back. Giving up after
    ``db_reconnect_timeout_seconds`` leaves the next attempt to the next request (measured:
    0.0 s here with 2 s, 15.8 s with 300 s).
    """
    app = create_app(settings.model_copy(update={"db_reconnect_timeout_seconds": RECONNECT_S}))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app.test") as client,
    ):
        assert (await client.get(ITEMS)).status_code == 200
        postgres.stop()
        try:
            down_until = time.monotonic() + 17  # past the attempts at about 1, 3, 7 and 15 s
            while time.monotonic() < down_until:
                assert (await client.get(ITEMS)).status_code == 503
        finally:
            postgres.start()
        waited = await _first_success_after(client, 30)
    print(f"first answer {waited:.1f} s after PostgreSQL was back")
    assert waited < BACK_WITHIN_S
