"""PostgreSQL connection pool (psycopg 3 + psycopg_pool)."""

from __future__ import annotations

from typing import Any

from psycopg import AsyncConnection
from psycopg.rows import DictRow, dict_row
from psycopg_pool import AsyncConnectionPool

from fastapi_fleet_app.settings import Settings

Conn = AsyncConnection[DictRow]
Pool = AsyncConnectionPool[Conn]
# Where a statement runs: alone on a pooled connection, or in the transaction open on a connection.
Db = Pool | Conn


def create_pool(settings: Settings) -> Pool:
    """A closed pool; open it with ``await pool.open()`` inside the running loop.

    Connections are autocommit (every query is a single statement), report times in
    UTC, and are checked before use so the pool recovers after a server restart.
    """
    options = f"-c statement_timeout={settings.db_statement_timeout_ms} -c TimeZone=UTC"
    kwargs: dict[str, Any] = {
        "autocommit": True,
        "row_factory": dict_row,
        "connect_timeout": settings.db_connect_timeout_seconds,
        "application_name": "fastapi-fleet-app",
        "options": options,
    }
    return AsyncConnectionPool(
        settings.database_url.get_secret_value(),
        kwargs=kwargs,
        min_size=settings.db_pool_min_size,
        max_size=settings.db_pool_max_size,
        timeout=settings.db_pool_timeout_seconds,
        reconnect_timeout=settings.db_reconnect_timeout_seconds,
        check=AsyncConnectionPool.check_connection,
        name="fastapi-fleet-app",
        open=False,
    )


async def ping(pool: Pool, pool_wait: float) -> None:
    """Run a trivial query; raises on failure or after ``pool_wait`` seconds in the pool."""
    async with pool.connection(timeout=pool_wait) as conn:
        await conn.execute("SELECT 1")
