"""Read-through cache on a real Redis, including Redis going away mid-test."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import redis

from fastapi_fleet_app.app import create_app
from fastapi_fleet_app.cache import create_redis
from fastapi_fleet_app.settings import Settings
from fleet.bench.throwaway import RedisServer

pytestmark = pytest.mark.asyncio

ITEMS = "/api/v1/items"
Sample = Callable[..., float]


@pytest.fixture
def redis_client(redis_server: RedisServer) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_server.url)
    yield client
    client.close()


@pytest.fixture
def restart_redis(redis_server: RedisServer) -> Iterator[RedisServer]:
    """The session Redis, restarted after the test."""
    yield redis_server
    redis_server.stop()
    redis_server.start()


async def _metrics(client: httpx.AsyncClient) -> str:
    return (await client.get("/metrics")).text


def _key(item_id: int) -> str:
    return f"fastapi-fleet:item:v1:{item_id}"


async def test_hit_then_invalidated_by_writes(
    client: httpx.AsyncClient, redis_client: redis.Redis, sample: Sample
) -> None:
    item = (await client.post(ITEMS, json={"name": "cached"})).json()
    url = f"{ITEMS}/{item['id']}"
    before = await _metrics(client)

    first = await client.get(url)
    assert redis_client.get(_key(item["id"])) == first.content
    assert 0 < redis_client.ttl(_key(item["id"])) <= 60
    second = await client.get(url)
    assert second.json() == first.json() == item

    after = await _metrics(client)
    for result, delta in (("miss", 1), ("hit", 1), ("error", 0)):
        moved = sample(after, "app_cache_requests_total", result=result) - sample(
            before, "app_cache_requests_total", result=result
        )
        assert moved == delta, result

    await client.patch(url, json={"description": "changed"})
    assert redis_client.get(_key(item["id"])) is None
    assert (await client.get(url)).json()["description"] == "changed"

    await client.delete(url)
    assert redis_client.get(_key(item["id"])) is None
    assert (await client.get(url)).status_code == 404


async def test_redis_stopped_mid_test(
    client: httpx.AsyncClient,
    restart_redis: RedisServer,
    sample: Sample,
    log_file: Path,
    read_log: Callable[[Path], list[dict[str, object]]],
) -> None:
    item = (await client.post(ITEMS, json={"name": "before"})).json()
    url = f"{ITEMS}/{item['id']}"
    assert (await client.get(url)).status_code == 200  # now cached
    degraded_before = sample(await _metrics(client), "app_degraded_total", dependency="redis")

    restart_redis.stop()

    assert (await client.get(url)).json() == item
    updated = await client.put(url, json={"name": "during"})
    assert updated.status_code == 200
    assert (await client.get(url)).json()["name"] == "during"
    created = await client.post(ITEMS, json={"name": "new while down"})
    assert created.status_code == 201
    listed = (await client.get(ITEMS)).json()["items"]
    assert [i["name"] for i in listed] == ["during", "new while down"]

    ready = await client.get("/ready")
    assert ready.status_code == 503
    assert ready.json()["checks"]["postgres"] == "ok"
    assert ready.json()["checks"]["redis"].startswith("error")
    assert (await client.get("/health")).status_code == 200

    metrics = await _metrics(client)
    assert sample(metrics, "app_degraded_total", dependency="redis") > degraded_before
    assert sample(metrics, "app_cache_requests_total", result="error") >= 2
    warnings = [line for line in read_log(log_file) if line["level"] == "WARNING"]
    assert any(line["message"].startswith("redis failed") for line in warnings)  # type: ignore[union-attr]

    restart_redis.start()
    await asyncio.sleep(0.4)  # past cache_retry_seconds
    assert (await client.get("/ready")).status_code == 200
    assert (await client.get(url)).json()["name"] == "during"
    assert (await client.get(url)).json()["name"] == "during"  # served from cache again


async def test_missed_invalidation_replayed(
    client: httpx.AsyncClient, restart_redis: RedisServer, redis_client: redis.Redis
) -> None:
    """An invalidation Redis refused leaves a stale body behind; it must not be served."""
    item = (await client.post(ITEMS, json={"name": "old"})).json()
    url = f"{ITEMS}/{item['id']}"
    await client.get(url)
    assert redis_client.get(_key(item["id"])) is not None

    redis_client.execute_command("ACL", "SETUSER", "default", "-del")
    updated = await client.patch(url, json={"name": "new"})  # DEL refused: NOPERM
    assert updated.status_code == 200
    redis_client.execute_command("ACL", "SETUSER", "default", "+del")
    assert redis_client.get(_key(item["id"])) is not None  # the stale body is still there

    await asyncio.sleep(0.4)  # past cache_retry_seconds
    assert (await client.get(url)).json()["name"] == "new"
    assert redis_client.get(_key(item["id"])) is not None  # re-cached, fresh
    assert (await client.get(url)).json()["name"] == "new"


async def test_a_starting_worker_opens_its_redis_connections_before_serving(
    settings: Settings, redis_client: redis.Redis
) -> None:
    # A worker recycled under load would otherwise open them all at once while serving.
    before = redis_client.info("clients")["connected_clients"]
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        opened = redis_client.info("clients")["connected_clients"] - before
        assert opened == settings.redis_max_connections
    assert redis_client.info("clients")["connected_clients"] == before


async def test_a_worker_starts_and_serves_while_redis_is_down(
    settings: Settings, restart_redis: RedisServer, log_file: Path, read_log: Callable[[Path], list[dict[str, object]]]
) -> None:
    restart_redis.stop()
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://app.test") as http:
            assert (await http.get("/health")).status_code == 200
            created = (await http.post(ITEMS, json={"name": "no cache"})).json()
            assert (await http.get(f"{ITEMS}/{created['id']}")).json() == created
    messages = [line["message"] for line in read_log(log_file)]
    assert "redis connections not opened ahead" in messages


async def test_the_first_request_after_a_redis_restart_finds_redis_ready(
    client: httpx.AsyncClient, restart_redis: RedisServer
) -> None:
    # The worker's pooled connections were closed by the restart while it sat idle: they are
    # replaced on their next use, not reported as a Redis failure.
    assert (await client.get("/ready")).status_code == 200
    restart_redis.stop()
    restart_redis.start()
    for _ in range(3):
        ready = await client.get("/ready")
        assert ready.status_code == 200, ready.text


async def test_a_timeout_is_never_retried(settings: Settings) -> None:
    # One more try only for a closed connection: a hung Redis costs one timeout, not two.
    client = create_redis(settings)
    kwargs = client.connection_pool.connection_kwargs
    await client.aclose()
    assert kwargs["retry_on_error"] == [redis.exceptions.ConnectionError]
    assert kwargs["retry"].get_retries() == 1
    assert not any(issubclass(error, redis.exceptions.TimeoutError) for error in kwargs["retry"]._supported_errors)
