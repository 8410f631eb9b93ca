"""``Idempotency-Key`` on POST and PATCH against real PostgreSQL: a keyed write runs once, a resend replays it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import httpx
import psycopg
import pytest

from fastapi_fleet_app import idempotency
from fleet.bench.throwaway import PostgresServer

pytestmark = pytest.mark.asyncio

ITEMS = "/api/v1/items"


def _key(key: str | bytes) -> dict[str, str | bytes]:
    return {"Idempotency-Key": key}


def _count(postgres: PostgresServer, table: str, where: str = "true") -> int:
    with psycopg.connect(postgres.url) as conn:
        row = conn.execute(f"SELECT count(*) FROM {table} WHERE {where}").fetchone()  # type: ignore[arg-type]
    assert row is not None
    return int(row[0])


def _age(postgres: PostgresServer, seconds: int, *keys: str) -> None:
    with psycopg.connect(postgres.url) as conn:
        conn.execute(
            "UPDATE idempotency_keys SET created_at = now() - make_interval(secs => %s) WHERE key = ANY(%s)",
            (seconds, list(keys)),
        )


async def test_a_keyed_post_creates_once_and_a_resend_gets_the_first_answer(
    client: httpx.AsyncClient, postgres: PostgresServer, sample: Callable[..., float]
) -> None:
    before = (await client.get("/metrics")).text
    body = {"name": "once", "description": "d"}
    first = await client.post(ITEMS, json=body, headers=_key("post-1"))
    assert first.status_code == 201
    assert "idempotent-replayed" not in first.headers
    again = await client.post(ITEMS, json=body, headers=_key("post-1"))
    # The draft's quoted form names the same key.
    quoted = await client.post(ITEMS, json=body, headers=_key('"post-1"'))
    for replay in (again, quoted):
        assert replay.status_code == 201
        assert replay.headers["idempotent-replayed"] == "true"
        assert replay.json() == first.json()
        assert replay.headers["location"] == first.headers["location"] == f"{ITEMS}/{first.json()['id']}"
        assert replay.headers["content-type"] == "application/json"
        assert replay.headers["x-request-id"] != first.headers["x-request-id"]  # the replay's own
    assert [item["id"] for item in (await client.get(ITEMS)).json()["items"]] == [first.json()["id"]]
    after = (await client.get("/metrics")).text
    assert sample(after, "app_idempotent_replays_total") - sample(before, "app_idempotent_replays_total") == 2


async def test_a_key_reused_for_another_request_is_refused(client: httpx.AsyncClient, postgres: PostgresServer) -> None:
    created = await client.post(ITEMS, json={"name": "first"}, headers=_key("reused"))
    assert created.status_code == 201
    other_body = await client.post(ITEMS, json={"name": "second"}, headers=_key("reused"))
    assert other_body.status_code == 422
    assert other_body.json() == {"detail": "Idempotency-Key was already used for another request"}
    other_route = await client.patch(f"{ITEMS}/{created.json()['id']}", json={"name": "first"}, headers=_key("reused"))
    assert other_route.status_code == 422
    # The same write in other bytes (whitespace that validation strips, a default spelled out) is the same request.
    same = await client.post(ITEMS, json={"name": "  first ", "description": ""}, headers=_key("reused"))
    assert same.status_code == 201 and same.headers["idempotent-replayed"] == "true"
    assert _count(postgres, "items") == 1
    assert (await client.get(f"{ITEMS}/{created.json()['id']}")).json()["name"] == "first"


async def _lock_waiters(postgres: PostgresServer, count: int) -> None:
    query = (
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE application_name = 'fastapi-fleet-app' AND wait_event_type = 'Lock'"
    )
    deadline = time.monotonic() + 30
    async with await psycopg.AsyncConnection.connect(postgres.url, autocommit=True) as conn:
        while (row := await (await conn.execute(query)).fetchone()) is None or row[0] < count:  # type: ignore[arg-type]
            assert time.monotonic() < deadline, "the requests never waited for the key"
            await asyncio.sleep(0.05)


async def test_concurrent_requests_with_one_key_create_one_item(
    client: httpx.AsyncClient, postgres: PostgresServer
) -> None:
    # A transaction that holds the key (as a request still in progress would) makes every
    # request wait; when it rolls back one of them takes the key and the others replay its answer.
    async with await psycopg.AsyncConnection.connect(postgres.url) as holder:
        await holder.execute("INSERT INTO idempotency_keys (key, fingerprint) VALUES ('race', 'held by the test')")
        sends = [
            asyncio.create_task(client.post(ITEMS, json={"name": "raced"}, headers=_key("race"))) for _ in range(3)
        ]
        await _lock_waiters(postgres, 3)
        assert _count(postgres, "items") == 0
        await holder.rollback()
    responses = await asyncio.gather(*sends)
    assert [response.status_code for response in responses] == [201] * 3
    assert len({response.json()["id"] for response in responses}) == 1
    assert sorted(response.headers.get("idempotent-replayed", "") for response in responses) == ["", "true", "true"]
    assert _count(postgres, "items") == 1

    # Without a holder: sent at the same moment, still one item.
    racing = await asyncio.gather(
        *(client.post(ITEMS, json={"name": "raced 2"}, headers=_key("race-2")) for _ in range(2))
    )
    assert racing[0].json() == racing[1].json()
    assert _count(postgres, "items") == 2


async def test_a_keyed_patch_is_not_applied_again(client: httpx.AsyncClient) -> None:
    item = (await client.post(ITEMS, json={"name": "patched", "description": "0"})).json()
    path = f"{ITEMS}/{item['id']}"
    first = await client.patch(path, json={"description": "a"}, headers=_key("patch-1"))
    assert first.status_code == 200 and first.json()["description"] == "a"
    assert (await client.get(path)).json()["description"] == "a"  # cached now
    assert (await client.patch(path, json={"description": "b"})).status_code == 200
    replay = await client.patch(path, json={"description": "a"}, headers=_key("patch-1"))
    assert replay.status_code == 200
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.json() == first.json()  # the first answer, updated_at included
    assert (await client.get(path)).json()["description"] == "b"  # not applied again


async def test_errors_are_not_stored_and_leave_the_key_free(
    client: httpx.AsyncClient, postgres: PostgresServer
) -> None:
    missing = await client.patch(f"{ITEMS}/1", json={"name": "x"}, headers=_key("early"))
    assert missing.status_code == 404
    invalid = await client.post(ITEMS, json={"name": ""}, headers=_key("invalid"))
    assert invalid.status_code == 422
    assert _count(postgres, "idempotency_keys") == 0
    assert (await client.post(ITEMS, json={"name": "now it exists"})).json()["id"] == 1
    patched = await client.patch(f"{ITEMS}/1", json={"name": "x"}, headers=_key("early"))
    assert patched.status_code == 200 and "idempotent-replayed" not in patched.headers
    assert patched.json()["name"] == "x"


async def test_without_a_key_every_request_is_executed(client: httpx.AsyncClient, postgres: PostgresServer) -> None:
    responses = [await client.post(ITEMS, json={"name": "plain"}) for _ in range(2)]
    assert [response.status_code for response in responses] == [201, 201]
    assert responses[0].json()["id"] != responses[1].json()["id"]
    assert all("idempotent-replayed" not in response.headers for response in responses)
    assert _count(postgres, "idempotency_keys") == 0


@pytest.mark.parametrize("key", ["", '""', "k" * 256, "tab\there", b"caf\xc3\xa9"])
async def test_a_malformed_key_is_400(client: httpx.AsyncClient, postgres: PostgresServer, key: str | bytes) -> None:
    response = await client.post(ITEMS, json={"name": "never"}, headers=_key(key))
    assert response.status_code == 400
    assert response.json() == {"detail": "Idempotency-Key must be 1-255 printable ASCII characters"}
    assert _count(postgres, "items") == 0
    assert (await client.post(ITEMS, json={"name": "longest"}, headers=_key("k" * 255))).status_code == 201


async def test_expired_keys_are_deleted_at_most_once_a_minute(
    client: httpx.AsyncClient, postgres: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [1000.0]
    monkeypatch.setattr(idempotency, "monotonic", lambda: now[0])
    body = {"name": "kept a day"}
    first = (await client.post(ITEMS, json=body, headers=_key("old"))).json()  # expiry ran: nothing to delete
    await client.post(ITEMS, json=body, headers=_key("recent"))
    _age(postgres, 86_401, "old")
    _age(postgres, 86_000, "recent")
    await client.post(ITEMS, json=body, headers=_key("new"))  # within the minute: no expiry
    assert _count(postgres, "idempotency_keys", "key = 'old'") == 1
    now[0] += 61
    await client.post(ITEMS, json=body, headers=_key("newer"))
    keys = _count(postgres, "idempotency_keys", "key IN ('recent', 'new', 'newer')")
    assert (_count(postgres, "idempotency_keys", "key = 'old'"), keys) == (0, 3)
    # A resend after the retention runs again.
    resent = await client.post(ITEMS, json=body, headers=_key("old"))
    assert "idempotent-replayed" not in resent.headers and resent.json()["id"] != first["id"]


async def test_expiry_catches_up_in_bounded_batches(
    client: httpx.AsyncClient, postgres: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = [1000.0]
    monkeypatch.setattr(idempotency, "monotonic", lambda: now[0])
    monkeypatch.setattr(idempotency, "EXPIRE_BATCH", 2)
    old = [f"old-{n}" for n in range(5)]
    for key in old:
        await client.post(ITEMS, json={"name": key}, headers=_key(key))
    _age(postgres, 90_000, *old)
    now[0] += 61
    left = []
    for n in range(4):  # a full batch makes the next keyed request expire again, at once
        await client.post(ITEMS, json={"name": "later"}, headers=_key(f"later-{n}"))
        left.append(_count(postgres, "idempotency_keys", "key LIKE 'old-%'"))
    assert left == [3, 1, 0, 0]
    _age(postgres, 90_000, "later-0")
    await client.post(ITEMS, json={"name": "later"}, headers=_key("later-4"))
    assert _count(postgres, "idempotency_keys", "key = 'later-0'") == 1  # the last batch was not full: a minute
