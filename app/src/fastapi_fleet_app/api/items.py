"""``/api/v1/items``: CRUD with keyset pagination and a read-through cache.

POST and PATCH take an ``Idempotency-Key`` (:mod:`fastapi_fleet_app.idempotency`).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Response, status

from fastapi_fleet_app import repository
from fastapi_fleet_app.db import Db
from fastapi_fleet_app.idempotency import Key
from fastapi_fleet_app.models import Item, ItemCreate, ItemPage, ItemPatch
from fastapi_fleet_app.resources import Deps
from fastapi_fleet_app.responses import OrjsonResponse, dumps

MAX_ID = 2**63 - 1
MAX_PAGE = 100

router = APIRouter(prefix="/api/v1/items", tags=["items"])
ItemId = Annotated[int, Path(ge=1, le=MAX_ID)]
_NOT_FOUND: dict[int | str, dict[str, Any]] = {status.HTTP_404_NOT_FOUND: {"description": "No such item"}}


def _not_found() -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, "item not found")


@router.post("", response_model=Item, status_code=status.HTTP_201_CREATED)
async def create_item(body: ItemCreate, deps: Deps, key: Key) -> Response:
    async def insert(db: Db) -> Response:
        row = await repository.insert_item(db, body.name, body.description)
        return OrjsonResponse(row, status.HTTP_201_CREATED, {"Location": f"{router.prefix}/{row['id']}"})

    return await deps.idempotency.run(key, "POST", router.prefix, body, insert)


@router.get("", response_model=ItemPage)
async def list_items(
    deps: Deps,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 20,
    after: Annotated[int, Query(ge=0, le=MAX_ID, description="Last id of the previous page")] = 0,
) -> Response:
    rows = await repository.list_items(deps.pool, after, limit + 1)
    next_after = rows[limit - 1]["id"] if len(rows) > limit else None
    return OrjsonResponse({"items": rows[:limit], "next_after": next_after})


@router.get("/{item_id}", response_model=Item, responses=_NOT_FOUND)
async def get_item(item_id: ItemId, deps: Deps) -> Response:
    body = await deps.cache.get(item_id)
    if body is None:
        row = await repository.get_item(deps.pool, item_id)
        if row is None:
            raise _not_found()
        body = dumps(row)
        await deps.cache.set(item_id, body)
    return OrjsonResponse(body)


async def _update(db: Db, item_id: int, body: ItemCreate | ItemPatch) -> Response:
    row = await repository.update_item(db, item_id, body.name, body.description)
    if row is None:
        raise _not_found()
    return OrjsonResponse(row)


@router.put("/{item_id}", response_model=Item, responses=_NOT_FOUND)
async def replace_item(item_id: ItemId, body: ItemCreate, deps: Deps) -> Response:
    response = await _update(deps.pool, item_id, body)
    await deps.cache.invalidate(item_id)
    return response


@router.patch("/{item_id}", response_model=Item, responses=_NOT_FOUND)
async def patch_item(item_id: ItemId, body: ItemPatch, deps: Deps, key: Key) -> Response:
    path = f"{router.prefix}/{item_id}"
    response = await deps.idempotency.run(key, "PATCH", path, body, lambda db: _update(db, item_id, body))
    await deps.cache.invalidate(item_id)  # a replay's too: harmless
    return response


@router.delete("/{item_id}", status_code=status.HTTP_204_NO_CONTENT, responses=_NOT_FOUND)
async def delete_item(item_id: ItemId, deps: Deps) -> Response:
    if not await repository.delete_item(deps.pool, item_id):
        raise _not_found()
    await deps.cache.invalidate(item_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
