"""Gunicorn settings for production, read from environment variables.

Use as ``gunicorn -c python:fastapi_fleet_app.gunicorn_conf fastapi_fleet_app.main:app``.

Workers default to one per usable CPU: each Uvicorn worker runs an event loop that
keeps one core busy, so ``2 * cpu + 1`` (sized for blocking sync workers) would only
add context switches and PostgreSQL connections (workers x APP_DB_POOL_MAX_SIZE).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from gunicorn import glogging
from gunicorn.arbiter import Arbiter
from gunicorn.config import Config
from gunicorn.workers.base import Worker

from fastapi_fleet_app.logs import JsonFormatter
from fastapi_fleet_app.settings import ConfigError, load_settings
from fastapi_fleet_app.worker import RECYCLE_DIR_ENV

# prometheus_client (and fastapi_fleet_app.metrics) must not be imported here: the
# master would create the metrics before PROMETHEUS_MULTIPROC_DIR is set and every
# forked worker would inherit single-process metrics.
_MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"


def _int(name: str, default: int, minimum: int = 0) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) < minimum:
        raise SystemExit(f"fastapi-fleet-app: invalid configuration: {name}: must be an integer >= {minimum}")
    return int(raw)


def _optional_log(name: str, default: str) -> str | None:
    value = os.environ.get(name, default).strip()
    return value or None


# Refuse bad app settings in the master, before any worker boots (and fails).
try:
    _settings = load_settings()
except ConfigError as _exc:
    raise SystemExit(f"fastapi-fleet-app: {_exc}") from None

bind = [address.strip() for address in os.environ.get("APP_BIND", "127.0.0.1:8000").split(",")]
workers = _int("APP_WORKERS", len(os.sched_getaffinity(0)), minimum=1)
# Uvicorn workers that drain keep-alive connections on recycle and stop instead of
# closing them under the proxy's feet (see fastapi_fleet_app.worker).
worker_class = "fastapi_fleet_app.worker.UvicornWorker"
timeout = _int("APP_TIMEOUT", 30)
# Also the longest drain of a recycled or stopped worker: keep it above the proxy's
# upstream keepalive_timeout, which is how long an idle pooled connection may stay open.
graceful_timeout = _int("APP_GRACEFUL_TIMEOUT", 30)
# Idle keep-alive seconds: above the proxy's upstream keepalive_timeout, so that the
# proxy, never the app, closes an idle pooled connection.
keepalive = _int("APP_KEEPALIVE", 10)
# Listen queue per bound address (the kernel caps it at net.core.somaxconn): it holds the
# proxy's new connections while workers are busy or being replaced.
backlog = _int("APP_BACKLOG", 2048, minimum=1)
# Recycling bounds slow leaks. A recycled worker drains for up to the proxy's keepalive
# timeout before its replacement boots, so the default is high, and the jitter spreads
# the workers' recycles apart.
max_requests = _int("APP_MAX_REQUESTS", 100_000)
max_requests_jitter = _int("APP_MAX_REQUESTS_JITTER", 20_000)
forwarded_allow_ips = _settings.forwarded_allow_ips
proc_name = "fastapi-fleet-app"
# Gunicorn >= 25.1 control socket (gunicornc); off unless a path is given, since the
# default path under $HOME is shared by every instance of the same user.
control_socket = os.environ.get("APP_CONTROL_SOCKET", "").strip()
control_socket_disable = not control_socket
# Heartbeat files on tmpfs so a slow disk cannot get workers killed by the timeout.
worker_tmp_dir = "/dev/shm" if Path("/dev/shm").is_dir() else None  # noqa: S108

accesslog = _optional_log("APP_ACCESS_LOG", "")
errorlog = _optional_log("APP_ERROR_LOG", "-") or "-"
loglevel = _settings.log_level.lower()
# The app writes its JSON lines where Gunicorn writes its error log; both are
# reopened on USR1 (Gunicorn's handler reopens every logging.FileHandler).
raw_env = [f"APP_LOG_FILE={errorlog}"]


class JsonLogger(glogging.Logger):
    """Gunicorn's logger with the error log in the app's JSON line format."""

    def setup(self, cfg: Config) -> None:
        super().setup(cfg)
        for handler in self.error_log.handlers:
            handler.setFormatter(JsonFormatter())


logger_class = JsonLogger


_own_metrics_dir: str | None = None


def on_starting(server: Arbiter) -> None:
    """Master start: reset the metrics directory (a temporary one if unset), make the recycle gate's."""
    global _own_metrics_dir
    # Workers recycle one at a time (fastapi_fleet_app.worker.RecycleGate), in this master's own
    # directory: under systemd's RuntimeDirectory (removed on stop, even after a crash) if any.
    parent = os.environ.get("RUNTIME_DIRECTORY", "").split(":")[0] or worker_tmp_dir
    os.environ[RECYCLE_DIR_ENV] = tempfile.mkdtemp(prefix="fastapi-fleet-app-recycle-", dir=parent)
    directory = os.environ.get(_MULTIPROC_DIR)
    if not directory:
        directory = _own_metrics_dir = tempfile.mkdtemp(prefix="fastapi-fleet-app-metrics-")
        os.environ[_MULTIPROC_DIR] = directory
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        stale.unlink()


def child_exit(server: Arbiter, worker: Worker) -> None:
    """Drop a dead worker's live gauges from the aggregated metrics."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server: Arbiter) -> None:
    """Remove the recycle gate's directory, and the metrics directory if this master created it."""
    for directory in (_own_metrics_dir, os.environ.get(RECYCLE_DIR_ENV)):
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)
