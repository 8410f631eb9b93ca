"""Alembic environment: online migrations under a transaction-level advisory lock.

A second ``migrate`` started meanwhile (another host) waits for the lock, then reads
the version table again and finds nothing left to do.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool, text

from fastapi_fleet_app.migrate import ADVISORY_LOCK_KEY

engine = create_engine(context.config.attributes["sqlalchemy_url"], poolclass=pool.NullPool)
with engine.connect() as connection:
    context.configure(connection=connection)
    with context.begin_transaction():
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK_KEY})
        context.run_migrations()
engine.dispose()
