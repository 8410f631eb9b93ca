"""SQL for the ``items`` table; every function is one statement.

Given the pool, a statement runs alone (autocommit); given a connection, it runs in
whatever transaction the caller has open on it.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any, LiteralString

from psycopg import AsyncConnection

from fastapi_fleet_app.db import Conn, Db, Pool

Row = dict[str, Any]

_INSERT = (
    "INSERT INTO items (name, description) VALUES (%s, %s) RETURNING id, name, description, created_at, updated_at"
)
_SELECT = "SELECT id, name, description, created_at, updated_at FROM items WHERE id = %s"
_LIST = "SELECT id, name, description, created_at, updated_at FROM items WHERE id > %s ORDER BY id LIMIT %s"
_UPDATE = (
    "UPDATE items SET name = COALESCE(%s, name), description = COALESCE(%s, description),"
    " updated_at = now() WHERE id = %s"
    " RETURNING id, name, description, created_at, updated_at"
)
_DELETE = "DELETE FROM items WHERE id = %s RETURNING id"


@contextlib.asynccontextmanager
async def _connection(db: Db) -> AsyncIterator[Conn]:
    if isinstance(db, AsyncConnection):
        yield db
        return
    async with db.connection() as conn:
        yield conn


async def _one(db: Db, query: LiteralString, params: tuple[Any, ...]) -> Row | None:
    async with _connection(db) as conn:
        cur = await conn.execute(query, params)
        return await cur.fetchone()


async def insert_item(db: Db, name: str, description: str) -> Row:
    row = await _one(db, _INSERT, (name, description))
    assert row is not None  # INSERT ... RETURNING always yields the row
    return row


async def get_item(pool: Pool, item_id: int) -> Row | None:
    return await _one(pool, _SELECT, (item_id,))


async def list_items(pool: Pool, after: int, limit: int) -> list[Row]:
    """Up to ``limit`` items with ``id > after`` in id order (keyset pagination)."""
    async with pool.connection() as conn:
        cur = await conn.execute(_LIST, (after, limit))
        return await cur.fetchall()


async def update_item(db: Db, item_id: int, name: str | None, description: str | None) -> Row | None:
    """Set the given fields (``None`` keeps the current value); None if no such item."""
    return await _one(db, _UPDATE, (name, description, item_id))


async def delete_item(pool: Pool, item_id: int) -> bool:
    return await _one(pool, _DELETE, (item_id,)) is not None
