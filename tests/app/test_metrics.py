"""``/metrics`` in single-process mode: counters and histograms move per request."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from fastapi_fleet_app.settings import package_version

pytestmark = pytest.mark.asyncio

ROUTE = "/api/v1/items/{item_id}"


async def test_counters_move(client: httpx.AsyncClient, sample: Callable[..., float]) -> None:
    item = (await client.post("/api/v1/items", json={"name": "m"})).json()
    before = (await client.get("/metrics")).text
    for _ in range(3):
        assert (await client.get(f"/api/v1/items/{item['id']}")).status_code == 200
    assert (await client.get("/api/v1/items/999999")).status_code == 404
    assert (await client.get("/no/such/path")).status_code == 404
    response = await client.get("/metrics")
    after = response.text
    assert response.headers["content-type"].startswith("text/plain")

    def delta(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    ok = {"method": "GET", "route": ROUTE, "status": "200"}
    assert delta("app_http_requests_total", **ok) == 3
    assert delta("app_http_request_duration_seconds_count", **ok) == 3
    assert delta("app_http_request_duration_seconds_bucket", le="+Inf", **ok) == 3
    assert delta("app_http_requests_total", route=ROUTE, status="404") == 1
    assert delta("app_http_requests_total", route="unmatched", status="404") == 1
    assert delta("app_cache_requests_total", result="miss") == 2
    assert delta("app_cache_requests_total", result="hit") == 2
    assert sample(after, "app_http_requests_in_progress") == 1  # this scrape
    assert sample(after, "app_db_pool_size") >= 1
    assert sample(after, "app_build_info", version=package_version(), release="9.9.9-test") == 1


async def test_health(client: httpx.AsyncClient) -> None:
    body = (await client.get("/health")).json()
    assert body["status"] == "ok"
    assert body["version"] == package_version()
    assert body["release"] == "9.9.9-test"
    assert body["hostname"]
    ready = await client.get("/ready")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ok", "release": "9.9.9-test", "checks": {"postgres": "ok", "redis": "ok"}}
