"""``/api/v1/items``: CRUD with keyset pagination and a read-through cache."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Response, status

from fastapi_fleet_app import repository
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
async def create_item(body: ItemCreate, deps: Deps) -> Response:
    row = await repository.insert_item(deps.pool, body.name, body.description)
    return OrjsonResponse(row, status.HTTP_201_CREATED, {"Location": f"{router.prefix}/{row['id']}"})


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


async def _update(deps: Deps, item_id: int, name: str | None, description: str | None) -> Response:
    row = await repository.update_item(deps.pool, item_id, name, description)
    if row is None:
        raise _not_found()
    await deps.cache.invalidate(item_id)
    return OrjsonResponse(row)


@router.put("/{item_id}", response_model=Item, responses=_NOT_FOUND)
async def replace_item(item_id: ItemId, body: ItemCreate, deps: Deps) -> Response:
    return await _update(deps, item_id, body.name, body.description)


@router.patch("/{item_id}", response_model=Item, responses=_NOT_FOUND)
async def patch_item(item_id: ItemId, body: ItemPatch, deps: Deps) -> Response:
    return await _update(deps, item_id, body.name, body.description)


@router.delete("/{item_id}", status_code=status.HTTP_204_NO_CONTENT, responses=_NOT_FOUND)
async def delete_item(item_id: ItemId, deps: Deps) -> Response:
    if not await repository.delete_item(deps.pool, item_id):
        raise _not_found()
    await deps.cache.invalidate(item_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
