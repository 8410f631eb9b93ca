"""Schema migrations with Alembic, serialized across hosts by an advisory lock."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import URL, make_url

# Key of the PostgreSQL advisory lock held while migrating ("fleet" in ASCII).
ADVISORY_LOCK_KEY = 0x666C656574
SCRIPT_LOCATION = "fastapi_fleet_app:migrations"


def sqlalchemy_url(database_url: str) -> URL:
    """``postgresql://`` URL rewritten for SQLAlchemy's psycopg 3 dialect."""
    return make_url(database_url).set(drivername="postgresql+psycopg")


def alembic_config(database_url: str) -> Config:
    """Alembic config for the migrations shipped in this package (no alembic.ini)."""
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    config.attributes["sqlalchemy_url"] = sqlalchemy_url(database_url)
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Upgrade to ``revision``; a no-op when already there, safe to run concurrently."""
    command.upgrade(alembic_config(database_url), revision)
