"""``fastapi-fleet-app migrate``: idempotent, and safe when started on several hosts at once."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator

import psycopg
import pytest
from alembic import command

from fastapi_fleet_app import migrate
from fastapi_fleet_app.migrate import ADVISORY_LOCK_KEY
from fleet.bench.throwaway import PostgresServer


@pytest.fixture
def empty_database(postgres: PostgresServer, clean: None) -> Iterator[str]:
    """URL of a new, empty database in the session server."""
    admin = postgres.url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS migrate_test")
        conn.execute("CREATE DATABASE migrate_test")
    yield postgres.url.rsplit("/", 1)[0] + "/migrate_test"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute("DROP DATABASE migrate_test WITH (FORCE)")


def _migrate(database_url: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("APP_")}
    env |= {"APP_DATABASE_URL": database_url, "APP_REDIS_URL": "redis://127.0.0.1:1/0"}
    return subprocess.Popen(
        [sys.executable, "-m", "fastapi_fleet_app.cli", "migrate"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_waiters(conn: psycopg.Connection, count: int) -> None:
    deadline = time.monotonic() + 60
    query = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
    while (row := conn.execute(query).fetchone()) is None or row[0] < count:
        assert time.monotonic() < deadline, "migrate runs never waited for the advisory lock"
        time.sleep(0.1)


def test_concurrent_and_repeated_runs(empty_database: str) -> None:
    # Hold the lock until all three runs queue behind it, then let them race.
    with psycopg.connect(empty_database, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (ADVISORY_LOCK_KEY,))
        runs = [_migrate(empty_database) for _ in range(3)]
        _wait_for_waiters(holder, 3)
        holder.execute("SELECT pg_advisory_unlock(%s)", (ADVISORY_LOCK_KEY,))
    outputs = [run.communicate(timeout=60) for run in runs]
    assert [run.returncode for run in runs] == [0] * 3, outputs
    for step in (" -> 0001", "0001 -> 0002"):
        applied = [err.count(f"Running upgrade {step}") for _, err in outputs]
        assert sorted(applied) == [0, 0, 1], step  # exactly one run did the work

    again = _migrate(empty_database)
    out, err = again.communicate(timeout=60)
    assert again.returncode == 0
    assert "database schema is at head" in out
    assert "Running upgrade" not in err

    with psycopg.connect(empty_database) as conn:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [("0002",)]
        assert _columns(conn, "items") == ["id", "name", "description", "created_at", "updated_at"]
        assert _columns(conn, "idempotency_keys") == [
            "key",
            "fingerprint",
            "status_code",
            "headers",
            "body",
            "created_at",
        ]


def _columns(conn: psycopg.Connection, table: str) -> list[str]:
    query = "SELECT column_name FROM information_schema.columns WHERE table_name = %s ORDER BY ordinal_position"
    return [column for (column,) in conn.execute(query, (table,)).fetchall()]


def test_idempotency_keys_downgrade_and_upgrade_again(empty_database: str) -> None:
    migrate.upgrade(empty_database)
    with psycopg.connect(empty_database, autocommit=True) as conn:
        conn.execute("INSERT INTO items (name) VALUES ('kept')")
        conn.execute("INSERT INTO idempotency_keys (key, fingerprint) VALUES ('k', 'f')")
        command.downgrade(migrate.alembic_config(empty_database), "0001")
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [("0001",)]
        assert conn.execute("SELECT to_regclass('idempotency_keys')").fetchone() == (None,)
        migrate.upgrade(empty_database)
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == [("0002",)]
        assert conn.execute("SELECT count(*) FROM idempotency_keys").fetchone() == (0,)
        assert conn.execute("SELECT name FROM items").fetchall() == [("kept",)]
        indexes = conn.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'idempotency_keys' ORDER BY 1")
        assert indexes.fetchall() == [("idempotency_keys_created_at",), ("idempotency_keys_pkey",)]


def test_failure_is_one_clear_line(postgres: PostgresServer) -> None:
    wrong = postgres.url.replace(postgres.password, "wrong-password-123")
    run = _migrate(wrong)
    _out, err = run.communicate(timeout=60)
    assert run.returncode == 1
    assert err.startswith("fastapi-fleet-app: migration failed: ")
    assert "password authentication failed" in err
    assert "wrong-password-123" not in err
    assert len(err.strip().splitlines()) == 1
