"""Items API against real PostgreSQL and Redis: CRUD, pagination, validation, limits."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

pytestmark = pytest.mark.asyncio

ITEMS = "/api/v1/items"


async def _create(client: httpx.AsyncClient, name: str, description: str = "") -> dict[str, object]:
    response = await client.post(ITEMS, json={"name": name, "description": description})
    assert response.status_code == 201, response.text
    body: dict[str, object] = response.json()
    return body


async def test_crud_round_trip(client: httpx.AsyncClient) -> None:
    created = await _create(client, "  widget  ", "first")
    assert created["name"] == "widget"  # surrounding whitespace stripped
    item_id = created["id"]
    assert isinstance(item_id, int)
    assert created["created_at"] == created["updated_at"]
    assert str(created["created_at"]).endswith("Z")

    response = await client.get(f"{ITEMS}/{item_id}")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == created

    patched = (await client.patch(f"{ITEMS}/{item_id}", json={"name": "gadget"})).json()
    assert (patched["name"], patched["description"]) == ("gadget", "first")
    assert datetime.fromisoformat(patched["updated_at"]) > datetime.fromisoformat(patched["created_at"])

    replaced = await client.put(f"{ITEMS}/{item_id}", json={"name": "gizmo"})
    assert replaced.status_code == 200
    assert (replaced.json()["name"], replaced.json()["description"]) == ("gizmo", "")
    assert (await client.get(f"{ITEMS}/{item_id}")).json() == replaced.json()

    assert (await client.delete(f"{ITEMS}/{item_id}")).status_code == 204
    for method in ("GET", "DELETE", "PUT", "PATCH"):
        missing = await client.request(method, f"{ITEMS}/{item_id}", json={"name": "x"})
        assert missing.status_code == 404, method
        assert missing.json() == {"detail": "item not found"}


async def test_keyset_pagination(client: httpx.AsyncClient) -> None:
    ids = [(await _create(client, f"item-{n}"))["id"] for n in range(7)]
    seen: list[object] = []
    after = 0
    pages = 0
    while True:
        page = (await client.get(ITEMS, params={"limit": 3, "after": after})).json()
        seen += [item["id"] for item in page["items"]]
        pages += 1
        if page["next_after"] is None:
            break
        after = page["next_after"]
    assert seen == ids
    assert pages == 3
    default = (await client.get(ITEMS)).json()
    assert len(default["items"]) == 7
    assert default["next_after"] is None


@pytest.mark.parametrize("params", [{"limit": 0}, {"limit": 101}, {"after": -1}, {"limit": "many"}])
async def test_pagination_bounds(client: httpx.AsyncClient, params: dict[str, object]) -> None:
    response = await client.get(ITEMS, params=params)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"][0] == "query"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "x" * 201}, "name"),
        ({"name": "ok", "description": "d" * 2001}, "description"),
        ({"name": 5}, "name"),
        ({"name": "ok", "colour": "red"}, "colour"),
        ({"name": "nul\u0000byte"}, "name"),
        ({"name": "ok", "description": "\u0000"}, "description"),
    ],
)
async def test_field_errors(client: httpx.AsyncClient, body: dict[str, object], field: str) -> None:
    response = await client.post(ITEMS, json=body)
    assert response.status_code == 422
    errors = response.json()["detail"]
    assert [error["loc"] for error in errors] == [["body", field]]


async def test_bad_ids(client: httpx.AsyncClient) -> None:
    for item_id in ("0", "-3", "abc", str(2**63)):
        response = await client.get(f"{ITEMS}/{item_id}")
        assert response.status_code == 422, item_id
        assert response.json()["detail"][0]["loc"] == ["path", "item_id"]


async def test_oversized_body_rejected(client: httpx.AsyncClient) -> None:
    big = b'{"name": "x", "description": "' + b"y" * 5000 + b'"}'
    declared = await client.post(
        ITEMS, content=big, headers={"content-type": "application/json", "x-request-id": "big-1"}
    )
    assert declared.status_code == 413
    assert declared.json() == {"detail": "request body too large"}
    assert declared.headers["x-request-id"] == "big-1"

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(big), 1000):
            yield big[start : start + 1000]

    streamed = await client.post(ITEMS, content=chunks(), headers={"content-type": "application/json"})
    assert "content-length" not in streamed.request.headers
    assert streamed.status_code == 413
    assert (await client.get(ITEMS)).json()["items"] == []


async def test_request_id_echoed_and_logged(
    client: httpx.AsyncClient, log_file: Path, read_log: Callable[[Path], list[dict[str, object]]]
) -> None:
    given = await client.get("/health", headers={"X-Request-ID": "req-42.a"})
    assert given.headers["x-request-id"] == "req-42.a"
    generated = await client.get("/health")
    assert len(generated.headers["x-request-id"]) == 32
    unsafe = await client.get("/health", headers={"X-Request-ID": "bad id\twith spaces"})
    assert unsafe.headers["x-request-id"] != "bad id\twith spaces"

    lines = [line for line in read_log(log_file) if line.get("message") == "request"]
    ids = [line["request_id"] for line in lines]
    assert ids == ["req-42.a", generated.headers["x-request-id"], unsafe.headers["x-request-id"]]
    line = lines[0]
    assert line["level"] == "INFO"
    assert (line["method"], line["route"], line["status"]) == ("GET", "/health", 200)
    assert isinstance(line["duration_ms"], float)
    assert line["client"] == "127.0.0.1"
    assert "time" in line


async def test_unhandled_error_is_json_500_with_traceback_logged(
    app: FastAPI,
    client: httpx.AsyncClient,
    log_file: Path,
    read_log: Callable[[Path], list[dict[str, object]]],
) -> None:
    async def explode() -> None:
        raise RuntimeError("kaboom")

    app.add_api_route("/explode", explode)
    response = await client.get("/explode", headers={"X-Request-ID": "boom-1"})
    assert response.status_code == 500
    assert response.json() == {"detail": "Internal Server Error"}
    assert response.headers["x-request-id"] == "boom-1"
    errors = [line for line in read_log(log_file) if line["level"] == "ERROR"]
    assert errors[0]["message"] == "unhandled error"
    assert errors[0]["request_id"] == "boom-1"
    assert "RuntimeError: kaboom" in str(errors[0]["exc_info"])
    assert errors[1]["status"] == 500
