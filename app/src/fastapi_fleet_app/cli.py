"""``fastapi-fleet-app`` command: ``check-config`` and ``migrate``."""

from __future__ import annotations

import argparse
import logging
import sys

from alembic.util import CommandError
from sqlalchemy.exc import SQLAlchemyError

from fastapi_fleet_app import migrate
from fastapi_fleet_app.settings import ConfigError, Settings, load_settings

PROG = "fastapi-fleet-app"


def _check_config(_: argparse.Namespace, settings: Settings) -> int:
    print(f"{PROG}: configuration OK (release {settings.release})")
    return 0


def _migrate(args: argparse.Namespace, settings: Settings) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        migrate.upgrade(settings.database_url.get_secret_value(), args.revision)
    except (SQLAlchemyError, CommandError) as exc:
        # The DBAPI message names host and user, never the password.
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        print(f"{PROG}: migration failed: {reason}", file=sys.stderr)
        return 1
    print(f"{PROG}: database schema is at {args.revision}")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("check-config", help="validate APP_* settings and exit")
    check.set_defaults(handler=_check_config)
    upgrade = commands.add_parser("migrate", help="upgrade the database schema (idempotent, advisory-locked)")
    upgrade.add_argument("--revision", default="head", help="target revision (default: head)")
    upgrade.set_defaults(handler=_migrate)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 1
    code: int = args.handler(args, settings)
    return code


if __name__ == "__main__":
    sys.exit(main())
