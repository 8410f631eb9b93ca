"""``Idempotency-Key`` (draft-ietf-httpapi-idempotency-key-header): a keyed write runs at most once.

The key is claimed, the write done and its response stored in one transaction (table
``idempotency_keys``): if the write committed, so did the key and the response, which a
request with the same key gets again; if it rolled back (an error), neither exists and
the key is free. A request whose key another transaction holds waits for it (the primary
key's unique index), then replays the stored response or, after a rollback, takes over.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Awaitable, Callable
from time import monotonic
from typing import Annotated

from fastapi import Depends, Header, HTTPException, Response, status
from psycopg.types.json import Jsonb
from pydantic import BaseModel

from fastapi_fleet_app.db import Conn, Db, Pool
from fastapi_fleet_app.metrics import IDEMPOTENT_REPLAYS

HEADER = "Idempotency-Key"
REPLAYED = (b"idempotent-replayed", b"true")
MAX_KEY_LENGTH = 255
EXPIRE_EVERY_SECONDS = 60.0
EXPIRE_BATCH = 1000
_KEY = re.compile(rf"[\x20-\x7e]{{1,{MAX_KEY_LENGTH}}}")

# A key held by a committed transaction is updated in place (a no-op) and its row returned;
# so one statement either inserts (status_code still NULL) or returns the stored response.
_CLAIM = (
    "INSERT INTO idempotency_keys (key, fingerprint) VALUES (%s, %s)"
    " ON CONFLICT (key) DO UPDATE SET fingerprint = idempotency_keys.fingerprint"
    " RETURNING fingerprint, status_code, headers, body"
)
_STORE = "UPDATE idempotency_keys SET status_code = %s, headers = %s, body = %s WHERE key = %s"
_EXPIRE = (
    "DELETE FROM idempotency_keys WHERE key IN (SELECT key FROM idempotency_keys"
    " WHERE created_at < now() - make_interval(secs => %s) LIMIT %s FOR UPDATE SKIP LOCKED)"
)

Write = Callable[[Db], Awaitable[Response]]


def parse_key(value: str) -> str:
    """The key of a header value: the draft's quoted string or a bare value, 1-255 printable ASCII."""
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1]
    if not _KEY.fullmatch(value):
        detail = f"{HEADER} must be 1-{MAX_KEY_LENGTH} printable ASCII characters"
        raise HTTPException(status.HTTP_400_BAD_REQUEST, detail)
    return value


async def _header(
    value: Annotated[str | None, Header(alias=HEADER, description="Resend safely with the same key")] = None,
) -> str | None:
    return None if value is None else parse_key(value)


Key = Annotated[str | None, Depends(_header)]


def fingerprint(method: str, path: str, body: BaseModel) -> str:
    """What a key stands for: method, path and SHA-256 of the validated body."""
    return f"{method} {path} {hashlib.sha256(body.model_dump_json().encode()).hexdigest()}"


async def _claim(conn: Conn, key: str, request: str) -> Response | None:
    """Hold ``key`` in the open transaction; None if it is new, else the stored response."""
    cur = await conn.execute(_CLAIM, (key, request))
    row = await cur.fetchone()
    assert row is not None  # inserted or updated, either way returned
    if row["status_code"] is None:  # only the row this transaction just inserted has none
        return None
    if row["fingerprint"] != request:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"{HEADER} was already used for another request")
    IDEMPOTENT_REPLAYS.inc()
    response = Response(bytes(row["body"]), row["status_code"])
    response.raw_headers = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in row["headers"]]
    response.raw_headers.append(REPLAYED)
    return response


async def _store(conn: Conn, key: str, response: Response) -> None:
    headers = Jsonb([[name.decode("latin-1"), value.decode("latin-1")] for name, value in response.raw_headers])
    await conn.execute(_STORE, (response.status_code, headers, bytes(response.body), key))


class Idempotency:
    """Keyed writes of one worker, and the expiry of keys older than ``retention_seconds``.

    Expiry deletes up to :data:`EXPIRE_BATCH` keys at a keyed request at most every
    :data:`EXPIRE_EVERY_SECONDS`, or at the next keyed request while batches come back full.
    """

    def __init__(self, pool: Pool, retention_seconds: int) -> None:
        self.pool = pool
        self.retention_seconds = retention_seconds
        self._next_expiry = 0.0

    async def run(self, key: str | None, method: str, path: str, body: BaseModel, write: Write) -> Response:
        """``write`` on the pool without a key; with one, at most once for that key and request."""
        if key is None:
            return await write(self.pool)
        async with self.pool.connection() as conn:
            await self.expire_if_due(conn)
            async with conn.transaction():
                replay = await _claim(conn, key, fingerprint(method, path, body))
                if replay is not None:
                    return replay
                response = await write(conn)
                await _store(conn, key, response)
        return response

    async def expire_if_due(self, conn: Conn) -> int:
        """Delete a batch of expired keys if it is time; how many were deleted."""
        now = monotonic()
        if now < self._next_expiry:
            return 0
        cur = await conn.execute(_EXPIRE, (self.retention_seconds, EXPIRE_BATCH))
        full = cur.rowcount >= EXPIRE_BATCH
        self._next_expiry = now if full else now + EXPIRE_EVERY_SECONDS
        return cur.rowcount
