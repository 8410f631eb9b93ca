"""Create the idempotency_keys table (Idempotency-Key of POST and PATCH).

Revision ID: 0002
Revises: 0001

A new table only (expand): releases without this revision never read it. Its index is
created with the table, while nothing uses it yet, so it needs no CONCURRENTLY.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "idempotency_keys",
        sa.Column("key", sa.Text, primary_key=True),
        # Method, path and SHA-256 of the validated body of the request that claimed the key.
        sa.Column("fingerprint", sa.Text, nullable=False),
        # The response, stored in the write's transaction (committed rows always have one).
        sa.Column("status_code", sa.SmallInteger),
        sa.Column("headers", postgresql.JSONB),
        sa.Column("body", sa.LargeBinary),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint("char_length(key) BETWEEN 1 AND 255", name="idempotency_keys_key_length"),
    )
    op.create_index("idempotency_keys_created_at", "idempotency_keys", ["created_at"])


def downgrade() -> None:
    op.drop_table("idempotency_keys")
