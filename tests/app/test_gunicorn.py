"""The real Gunicorn master with two Uvicorn workers, from the shipped config module."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from fleet.bench.throwaway import (
    ASGI_APP,
    GUNICORN_CONFIG,
    GunicornServer,
    PostgresServer,
    RedisServer,
    app_environment,
)

ReadLog = Callable[[Path], list[dict[str, object]]]


@pytest.fixture
def metrics_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "metrics"
    directory.mkdir()
    (directory / "counter_999999.db").write_bytes(b"left over from a previous run")
    return directory


@pytest.fixture
def server(
    clean: None,
    postgres: PostgresServer,
    redis_server: RedisServer,
    log_file: Path,
    metrics_dir: Path,
) -> Iterator[GunicornServer]:
    env = app_environment(postgres.url, redis_server.url, error_log=str(log_file), db_pool_min_size="1")
    env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    with GunicornServer(env, workers=2) as running:
        yield running


def _get(server: GunicornServer, path: str, request_id: str) -> None:
    response = httpx.get(server.base_url + path, headers={"X-Request-ID": request_id}, timeout=10)
    assert response.status_code == 200
    assert response.headers["x-request-id"] == request_id


def _burst(server: GunicornServer, request_ids: list[str]) -> None:
    """Concurrent requests on fresh connections, so both workers accept some."""
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda request_id: _get(server, "/health", request_id), request_ids))


def _served_by(lines: list[dict[str, object]], prefix: str) -> dict[str, object]:
    """Request id -> worker pid, for request lines whose id starts with ``prefix``."""
    return {
        str(line["request_id"]): line["pid"]
        for line in lines
        if line.get("message") == "request" and str(line.get("request_id")).startswith(prefix)
    }


def _worker_pids(lines: list[dict[str, object]]) -> set[object]:
    return {line["pid"] for line in lines if str(line["message"]).startswith("Booting worker with pid")}


def test_metrics_aggregate_across_workers(
    server: GunicornServer,
    log_file: Path,
    metrics_dir: Path,
    read_log: ReadLog,
    sample: Callable[..., float],
) -> None:
    assert not (metrics_dir / "counter_999999.db").exists()  # wiped on master start
    labels = {"method": "GET", "route": "/health", "status": "200"}
    before = sample(httpx.get(server.base_url + "/metrics").text, "app_http_requests_total", **labels)

    sent: list[str] = []
    for batch in range(10):
        ids = [f"agg-{batch}-{n}" for n in range(40)]
        _burst(server, ids)
        sent += ids
        if len(set(_served_by(read_log(log_file), "agg-").values())) == 2:
            break
    served = _served_by(read_log(log_file), "agg-")
    assert set(served) == set(sent)
    assert len(set(served.values())) == 2, "one worker served everything"

    for _ in range(4):  # whichever worker answers the scrape reports the total
        text = httpx.get(server.base_url + "/metrics").text
        assert sample(text, "app_http_requests_total", **labels) - before == len(sent)
        assert sample(text, "app_http_request_duration_seconds_count", **labels) >= len(sent)
        assert sample(text, "app_db_pool_size") >= 2  # one connection per worker at least

    forwarded = httpx.get(
        server.base_url + "/health",
        headers={"X-Forwarded-For": "203.0.113.9", "X-Request-ID": "fwd-1"},
    )
    assert forwarded.status_code == 200

    def forwarded_clients() -> list[object]:
        lines = read_log(log_file)  # every line, Gunicorn's included, is JSON
        return [line["client"] for line in lines if line.get("request_id") == "fwd-1"]

    # The request line is written once the response is out: the client may be faster.
    deadline = time.monotonic() + 10
    while not forwarded_clients() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert forwarded_clients() == ["203.0.113.9"]

    assert server.stop() == 0
    assert not list(metrics_dir.glob("gauge_live*")), "mark_process_dead not called"


def test_usr1_reopens_log_files(server: GunicornServer, log_file: Path, read_log: ReadLog) -> None:
    workers = _worker_pids(read_log(log_file))
    assert len(workers) == 2
    sent = [f"pre-{n}" for n in range(10)]
    _burst(server, sent)

    rotated = log_file.with_name("app.log.1")
    log_file.rename(rotated)  # what logrotate does before its postrotate script
    os.kill(server.pid, signal.SIGUSR1)

    deadline = time.monotonic() + 15
    batch = 0
    while set(_served_by(read_log(log_file), "probe-").values()) != workers:
        assert time.monotonic() < deadline, "workers kept writing to the rotated file"
        ids = [f"probe-{batch}-{n}" for n in range(16)]
        _burst(server, ids)
        sent += ids
        batch += 1

    after = [f"post-{n}" for n in range(20)]
    _burst(server, after)
    sent += after
    new, old = read_log(log_file), read_log(rotated)
    assert set(_served_by(new, "post-")) == set(after)
    assert not _served_by(old, "post-")
    logged = Counter(str(line["request_id"]) for line in new + old if line.get("message") == "request")
    assert all(logged[request_id] == 1 for request_id in sent), "lines lost or duplicated"


def test_bad_settings_stop_startup(postgres: PostgresServer) -> None:
    env = app_environment(postgres.url, "redis://:topsecret@127.0.0.1:6379/0")
    env["APP_DB_POOL_MAX_SIZE"] = "0"
    env["APP_TIMEOUT"] = "30"
    run = subprocess.run(
        [sys.executable, "-m", "gunicorn", "-c", GUNICORN_CONFIG, ASGI_APP],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode != 0
    assert run.stderr.splitlines() == [
        "fastapi-fleet-app: invalid configuration: APP_DB_POOL_MAX_SIZE: Input should be greater than or equal to 1"
    ]
    assert "topsecret" not in run.stdout + run.stderr
