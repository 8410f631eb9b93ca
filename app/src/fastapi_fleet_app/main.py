"""ASGI entry point for servers: ``fastapi_fleet_app.main:app``.

Settings are read at import; invalid settings print one line to stderr and exit.
"""

from __future__ import annotations

import sys

from fastapi_fleet_app.app import create_app
from fastapi_fleet_app.settings import ConfigError, load_settings

try:
    _settings = load_settings()
except ConfigError as exc:
    print(f"fastapi-fleet-app: {exc}", file=sys.stderr)
    raise SystemExit(1) from None

app = create_app(_settings)
