"""Worker recycling and graceful stop never close a keep-alive connection under a client.

A real Gunicorn master with ``fastapi_fleet_app.worker.UvicornWorker`` and a tiny
``max_requests``; the client behaves like nginx's upstream pool: it keeps connections
open and reuses idle ones. Uvicorn's stock shutdown closes idle connections, so the
next request on one of them reads a reset or an EOF; the draining worker must answer it
(with ``Connection: close``) instead.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import signal
import socket
import struct
import subprocess
import time
import types
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from fastapi_fleet_app.worker import HeadWithBodyTransport, RecycleGate
from fleet.bench.throwaway import LOOPBACK, GunicornServer, PostgresServer, RedisServer, app_environment

ReadLog = Callable[[Path], list[dict[str, object]]]
MAX_REQUESTS = 8
# Offset of tcpi_data_segs_in in Linux's struct tcp_info (include/uapi/linux/tcp.h, Linux 4.6+).
TCP_INFO_DATA_SEGS_IN = 152


def _written(path: Path) -> list[dict[str, object]]:
    """The log's complete lines so far (a worker may be writing the last one)."""
    if not path.exists():
        return []
    text = path.read_text()
    return [json.loads(line) for line in text[: text.rfind("\n") + 1].splitlines() if line]


def _messages(lines: list[dict[str, object]], prefix: str) -> list[dict[str, object]]:
    return [line for line in lines if str(line.get("message", "")).startswith(prefix)]


def _wait_for(what: str, check: Callable[[], bool], timeout: float = 30) -> None:
    """Poll until ``check()`` holds; fails (naming ``what``) if it never does."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.05)


class PooledClient:
    """Keep-alive connections reused round-robin, like a proxy's upstream pool."""

    def __init__(self, port: int, size: int) -> None:
        self.port = port
        self.connections: list[http.client.HTTPConnection | None] = [self._connect() for _ in range(size)]
        self.closes = 0  # responses that carried Connection: close
        self.request_ids: list[str] = []

    def _connect(self) -> http.client.HTTPConnection:
        conn = http.client.HTTPConnection(LOOPBACK, self.port, timeout=30)
        conn.connect()
        return conn

    def request(self, index: int, method: str = "GET", path: str = "/health", body: object = None) -> int:
        """One request on pooled connection ``index``; a reset or an EOF raises (the bug)."""
        conn = self.connections[index] or self._connect()
        self.connections[index] = conn
        request_id = f"pool-{uuid.uuid4().hex[:12]}"
        headers = {"X-Request-ID": request_id}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        conn.request(method, path, body=data, headers=headers)
        response = conn.getresponse()
        response.read()
        self.request_ids.append(request_id)
        if response.will_close:  # the server asked to drop this connection: reconnect on next use
            self.closes += 1
            conn.close()
            self.connections[index] = None
        return response.status

    def round(self) -> list[int]:
        return [self.request(index) for index in range(len(self.connections))]

    def close(self) -> None:
        for conn in self.connections:
            if conn is not None:
                conn.close()


@pytest.fixture
def recycling_server(
    clean: None, postgres: PostgresServer, redis_server: RedisServer, log_file: Path
) -> Iterator[GunicornServer]:
    env = app_environment(
        postgres.url,
        redis_server.url,
        error_log=str(log_file),
        db_pool_min_size="1",
        max_requests=str(MAX_REQUESTS),
        max_requests_jitter="0",
        graceful_timeout="20",
    )
    with GunicornServer(env, workers=1) as running:
        yield running


def test_worker_recycles_without_resetting_pooled_connections(
    recycling_server: GunicornServer, log_file: Path, read_log: ReadLog
) -> None:
    client = PooledClient(recycling_server.port, size=4)
    try:
        statuses: list[int] = []
        recycles = 0
        for _ in range(100):
            if recycles >= 3:
                break
            statuses += client.round()
            # Pause until the worker notices its limit, so it begins to stop while every
            # pooled connection is idle: Uvicorn's own shutdown closes them right then.
            # The next round reuses them.
            deadline = time.monotonic() + 0.5
            while time.monotonic() < deadline:
                seen = len(_messages(_written(log_file), "Maximum request limit"))
                if seen > recycles:
                    recycles = seen
                    break
                time.sleep(0.05)
        assert recycles >= 3, "the worker did not recycle three times"
        statuses += client.round()  # the last recycled worker's idle connections too
    finally:
        client.close()

    assert set(statuses) == {200}
    # Every recycle answered the idle pooled connections instead of closing them.
    assert client.closes >= 3 * len(client.connections)
    _wait_for("three finished drains", lambda: len(_messages(_written(log_file), "Drained ")) >= 3)
    lines = _written(log_file)
    drained = _messages(lines, "Drained ")
    assert all(str(line["message"]).endswith("(0 left open)") for line in drained)
    served_by = {line["request_id"]: line["pid"] for line in lines if line.get("message") == "request"}
    assert set(client.request_ids) <= set(served_by)
    assert len(set(served_by.values())) >= 3, "requests were not spread over recycled workers"
    assert not _messages(lines, "WORKER TIMEOUT")


def test_graceful_stop_answers_idle_connections(
    recycling_server: GunicornServer, log_file: Path, read_log: ReadLog, postgres: PostgresServer
) -> None:
    client = PooledClient(recycling_server.port, size=2)
    try:
        assert client.round() == [200, 200]
        recycling_server.send_signal(signal.SIGTERM)
        _wait_for("the worker's shutdown", lambda: bool(_messages(_written(log_file), "Shutting down")))
        # Both connections sat idle while the worker began to stop: they are still served,
        # the POST exactly once, and each answer closes its connection.
        name = f"drain-{uuid.uuid4().hex[:8]}"
        assert client.request(0, "POST", "/api/v1/items", {"name": name, "description": "during stop"}) == 201
        assert client.request(1) == 200
        assert client.closes == 2
        assert recycling_server.wait(30) == 0
    finally:
        client.close()

    with psycopg.connect(postgres.url) as conn:
        rows = conn.execute("SELECT count(*) FROM items WHERE name = %s", (name,)).fetchone()
    assert rows == (1,)


def _dead_pid() -> int:
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_recycle_gate_lets_one_worker_away_at_a_time(tmp_path: Path) -> None:
    sibling = subprocess.Popen(["sleep", "60"])
    try:
        me = RecycleGate(tmp_path, workers=2)
        other = RecycleGate(tmp_path, workers=2, pid=sibling.pid)
        me.serving()
        assert not me.leave(), "left while the sibling was not serving"
        (tmp_path / str(_dead_pid())).touch()  # a killed worker's leftover does not count
        assert not me.leave()
        assert me.serving_workers() == {os.getpid()}
        other.serving()
        assert me.leave()
        assert me.serving_workers() == {sibling.pid}
        assert not other.leave(), "both workers away at once"
        assert other.leave(force=True)
        assert me.serving_workers() == set()
    finally:
        sibling.kill()
        sibling.wait()


def test_two_workers_never_recycle_together(
    clean: None, postgres: PostgresServer, redis_server: RedisServer, log_file: Path, read_log: ReadLog
) -> None:
    env = app_environment(
        postgres.url,
        redis_server.url,
        error_log=str(log_file),
        db_pool_min_size="1",
        max_requests="20",
        max_requests_jitter="0",
    )
    with GunicornServer(env, workers=2) as server:
        client = PooledClient(server.port, size=8)
        try:
            for _ in range(2000):
                client.round()
                if len(_messages(_written(log_file), "Maximum request limit")) >= 3:
                    break
        finally:
            client.close()
    lines = read_log(log_file)
    initial = {line["pid"] for line in _messages(lines, "Application startup complete")[:2]}
    away = most_away = 0
    for line in lines:
        message = str(line["message"])
        if message.startswith("Maximum request limit"):
            away += 1
        elif message.startswith("Application startup complete") and line["pid"] not in initial:
            away -= 1
        most_away = max(most_away, away)
    assert len(_messages(lines, "Maximum request limit")) >= 3
    assert most_away == 1, "two workers were away at the same time"
    assert _messages(lines, "Request limit of 20 reached; recycle deferred")


def _data_segments_received(sock: socket.socket) -> int:
    """``tcpi_data_segs_in`` of Linux's ``struct tcp_info``: segments that carried data to this socket."""
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 256)
    return struct.unpack_from("I", info, TCP_INFO_DATA_SEGS_IN)[0]


def _get(sock: socket.socket, path: str) -> bytes:
    """One keep-alive GET on a raw socket; the complete response (head and Content-Length body)."""
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {LOOPBACK}\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    lengths = [line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")]
    length = int(lengths[0])
    while len(body) < length:
        body += sock.recv(65536)
    return head


def test_a_response_leaves_in_one_segment(recycling_server: GunicornServer) -> None:
    # A head sent apart from its body is what a cut link can split: the proxy has passed the
    # head on and cannot retry the request elsewhere. On loopback (MSS 64 KiB) a response
    # written with one send arrives as one segment.
    item = http.client.HTTPConnection(LOOPBACK, recycling_server.port, timeout=10)
    headers = {"Content-Type": "application/json"}
    item.request("POST", "/api/v1/items", body=json.dumps({"name": "one-segment"}), headers=headers)
    created = item.getresponse()
    item_id = json.loads(created.read())["id"]
    item.close()
    with socket.create_connection((LOOPBACK, recycling_server.port), timeout=10) as sock:
        segments = [_data_segments_received(sock)]
        for path in ("/health", f"/api/v1/items/{item_id}", "/api/v1/items/999999"):
            head = _get(sock, path)
            segments.append(_data_segments_received(sock))
            assert head.startswith(b"HTTP/1.1 "), head
    assert segments == [0, 1, 2, 3], f"data segments received after each response: {segments}"


class RecordingTransport:
    """The calls a response cycle makes on its transport."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, bytes]] = []
        self.closing = False

    def write(self, data: bytes) -> None:
        self.calls.append(("write", data))

    def close(self) -> None:
        self.calls.append(("close", b""))
        self.closing = True

    def is_closing(self) -> bool:
        return self.closing


def test_a_held_head_never_waits_for_a_slow_body() -> None:
    async def scenario() -> list[tuple[str, bytes]]:
        transport = RecordingTransport()
        cycle = types.SimpleNamespace(response_started=False)
        wrapped = HeadWithBodyTransport(transport, cycle)  # type: ignore[arg-type]
        wrapped.write(b"HTTP/1.1 100 Continue\r\n\r\n")  # before the response: not held
        cycle.response_started = True
        wrapped.write(b"HEAD")
        assert transport.calls == [("write", b"HTTP/1.1 100 Continue\r\n\r\n")]
        await asyncio.sleep(0)  # a stream's first chunk comes later: the head leaves on the next turn
        await asyncio.sleep(0)
        wrapped.write(b"chunk")
        wrapped.close()
        return transport.calls

    assert asyncio.run(scenario()) == [
        ("write", b"HTTP/1.1 100 Continue\r\n\r\n"),
        ("write", b"HEAD"),
        ("write", b"chunk"),
        ("close", b""),
    ]


def test_a_held_head_leaves_before_the_close() -> None:
    async def scenario() -> list[tuple[str, bytes]]:
        transport = RecordingTransport()
        wrapped = HeadWithBodyTransport(transport, types.SimpleNamespace(response_started=True))  # type: ignore[arg-type]
        wrapped.write(b"HEAD")
        wrapped.close()  # an app that failed after starting its response
        await asyncio.sleep(0)
        return transport.calls

    assert asyncio.run(scenario()) == [("write", b"HEAD"), ("close", b"")]
