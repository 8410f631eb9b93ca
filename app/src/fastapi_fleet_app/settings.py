"""Settings from ``APP_*`` environment variables and an optional env file."""

from __future__ import annotations

import ipaddress
import os
import sys
from functools import cached_property
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qs, urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "APP_"
ENV_FILE_VARIABLE = "APP_ENV_FILE"
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
# URL parameters that name a CA file the client verifies its server with (libpq, redis-py).
_CA_PARAMETERS = {"database_url": "sslrootcert", "redis_url": "ssl_ca_certs"}


class ConfigError(Exception):
    """Invalid configuration; the message names variables, never their values."""


def package_version() -> str:
    """Installed version of this distribution."""
    try:
        return version("fastapi-fleet-app")
    except PackageNotFoundError:
        return "0+unknown"


def running_release(prefix: str | None = None) -> str:
    """The release this interpreter runs: ``<release>`` of ``<root>/releases/<release>/venv``.

    The app role installs each release into its own virtualenv, whose scripts (Gunicorn,
    the CLI) start that venv's Python by its real path, so ``sys.prefix`` names the release
    whose code is imported, whatever ``current`` points to meanwhile. Outside that layout,
    the installed package version.
    """
    venv = Path(sys.prefix if prefix is None else prefix).resolve()
    if venv.name == "venv" and venv.parent.parent.name == "releases" and venv.parent.name:
        return venv.parent.name
    return package_version()


def _check_scheme(value: SecretStr, schemes: tuple[str, ...], ca_parameter: str) -> SecretStr:
    url = urlsplit(value.get_secret_value())
    if url.scheme not in schemes:
        raise ValueError(f"must be a URL with scheme {' or '.join(schemes)}")
    # A CA file that is missing or unreadable fails here, with its name, not at the first connection.
    for path in parse_qs(url.query).get(ca_parameter, []):
        if path != "system" and not os.access(path, os.R_OK):
            raise ValueError(f"{ca_parameter} names a CA file that cannot be read: {path}")
    return value


def _networks(value: str) -> tuple[Network, ...]:
    """Comma-separated addresses and CIDR networks (an address is its own /32 or /128)."""
    return tuple(ipaddress.ip_network(part.strip(), strict=False) for part in value.split(",") if part.strip())


class Settings(BaseSettings):
    """Runtime configuration; every field maps to ``APP_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    database_url: SecretStr
    redis_url: SecretStr
    db_pool_min_size: int = Field(default=2, ge=0, le=1000)
    db_pool_max_size: int = Field(default=10, ge=1, le=1000)
    db_pool_timeout_seconds: float = Field(default=5.0, gt=0, le=300)
    db_connect_timeout_seconds: int = Field(default=5, ge=1, le=300)
    # How long the pool retries a lost connection (backoff 1, 2, 4 ... s) before leaving it to
    # the next request: psycopg_pool's 300 s let a long outage's backoff outlast the outage.
    db_reconnect_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    db_statement_timeout_ms: int = Field(default=10_000, ge=0)
    # Opened when a worker starts (each Redis command holds one for a round trip of about a millisecond).
    redis_max_connections: int = Field(default=16, ge=1, le=1_000)
    redis_timeout_seconds: float = Field(default=0.5, gt=0, le=60)
    cache_ttl_seconds: int = Field(default=60, ge=0)
    cache_retry_seconds: float = Field(default=2.0, ge=0, le=3600)
    ready_timeout_seconds: float = Field(default=1.0, gt=0, le=60)
    max_body_bytes: int = Field(default=65_536, ge=0)
    # How long an Idempotency-Key and its stored response are kept (a resend later runs again).
    idempotency_retention_seconds: int = Field(default=86_400, ge=1)
    log_level: LogLevel = "INFO"
    log_file: str = "-"
    release: str = Field(default_factory=running_release, min_length=1, max_length=64)
    forwarded_allow_ips: str = "127.0.0.1"
    # Interactive API documentation (/docs, /redoc) and the schema (/openapi.json): off in production.
    docs_enabled: bool = False
    # Clients /metrics answers (after the trusted proxies' X-Forwarded-For); everyone else gets 403.
    metrics_allow_from: str = "127.0.0.1,::1"

    @field_validator("database_url")
    @classmethod
    def _database_scheme(cls, value: SecretStr) -> SecretStr:
        return _check_scheme(value, ("postgresql", "postgres"), _CA_PARAMETERS["database_url"])

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: SecretStr) -> SecretStr:
        return _check_scheme(value, ("redis", "rediss", "unix"), _CA_PARAMETERS["redis_url"])

    @field_validator("metrics_allow_from")
    @classmethod
    def _metrics_networks(cls, value: str) -> str:
        try:
            _networks(value)
        except ValueError:
            raise ValueError("must be comma-separated IP addresses or CIDR networks") from None
        return value

    @cached_property
    def metrics_networks(self) -> tuple[Network, ...]:
        """The networks /metrics answers."""
        return _networks(self.metrics_allow_from)

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _pool_bounds(self) -> Settings:
        if self.db_pool_max_size < self.db_pool_min_size:
            raise ValueError("APP_DB_POOL_MAX_SIZE must be >= APP_DB_POOL_MIN_SIZE")
        return self


def describe_errors(exc: ValidationError) -> str:
    """One line naming each bad variable and what is wrong, without input values."""
    parts = []
    for error in exc.errors(include_input=False, include_url=False):
        message = str(error["msg"]).replace("Value error, ", "")
        if error["loc"]:
            parts.append(f"{ENV_PREFIX}{str(error['loc'][0]).upper()}: {message}")
        else:
            parts.append(message)
    return "invalid configuration: " + "; ".join(parts)


def load_settings() -> Settings:
    """Read settings, raising ConfigError with a one-line, secret-free message."""
    env_file = os.environ.get(ENV_FILE_VARIABLE) or None
    if env_file is not None and not Path(env_file).is_file():
        raise ConfigError(f"invalid configuration: {ENV_FILE_VARIABLE}: file not found")
    try:
        return Settings(_env_file=env_file)  # type: ignore[call-arg]
    except ValidationError as exc:
        raise ConfigError(describe_errors(exc)) from None
