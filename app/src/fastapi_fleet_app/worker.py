"""Gunicorn worker that drains keep-alive connections instead of closing them.

``uvicorn_worker.UvicornWorker`` stops a worker (``max_requests`` reached, ``TERM`` on
stop or reload) with Uvicorn's server shutdown, which closes every *idle* keep-alive
connection at once. A proxy that keeps a pool of connections to the app (nginx
``keepalive``) may be sending a request on that very connection: the close crosses the
request on the wire, and the proxy reads a reset or an early EOF ("recv() failed (104:
Connection reset by peer)", "upstream prematurely closed connection"). It cannot know
whether the app saw the request, so it answers 502 for a POST and counts a failure of
the server for every request.

Only the client side can close an idle HTTP/1.1 connection without that race. So this
worker, when it is going to exit, stops accepting and then never closes a connection
itself: a request in flight, or the next one that arrives on an idle connection, is
answered with ``Connection: close`` (the proxy then drops the connection after reading
that complete response), and idle connections are left for the peer to close (nginx
closes idle upstream connections after its ``keepalive_timeout``, which must stay below
``APP_KEEPALIVE`` and ``APP_GRACEFUL_TIMEOUT``). The drain ends when the last
connection is gone, or after ``APP_GRACEFUL_TIMEOUT`` at the latest. The worker keeps
its heartbeat going meanwhile, so the arbiter does not kill it as a silent worker.

A recycled worker is away until its replacement has booted (seconds on a busy host). So
that recycles never leave a host with no worker accepting, a worker at its request limit
recycles only while all its siblings are serving (:class:`RecycleGate`); otherwise it
keeps serving and asks again on the next tick, for up to ``APP_TIMEOUT`` seconds.

Uvicorn writes a response's head and its body with two ``send`` calls, so they leave as two
TCP segments. A proxy that has the head has already passed it to its client, and can no longer
send the request to another server: if the app host's link is cut between the two segments,
the client's connection is closed mid-response (one such read error in 270,000 requests with an
app host cut off mid-run). The head is therefore held until the body's first write, and both
leave in one ``send`` (one segment for a response smaller than the MSS, as every JSON answer of
the app is); a body that is not produced in the same turn of the event loop (a stream) does
not wait: the head leaves on the loop's next turn (:class:`HeadWithBodyTransport`).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import random
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import uvicorn_worker
from gunicorn.arbiter import Arbiter
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle
from uvicorn.server import Server

log = logging.getLogger("uvicorn.error")

# Directory the Gunicorn master creates for the workers' recycle gate (set by gunicorn_conf).
RECYCLE_DIR_ENV = "FASTAPI_FLEET_APP_RECYCLE_DIR"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RecycleGate:
    """One worker away at a time: recycle only while every sibling is serving.

    Each serving worker holds a file named after its pid in ``directory``; the check and
    the removal of the leaving worker's file happen under an exclusive lock. Files of
    dead workers (killed, crashed) are ignored and removed.
    """

    def __init__(self, directory: Path, workers: int, pid: int | None = None) -> None:
        self.directory = directory
        self.workers = workers
        self.pid = pid or os.getpid()

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with open(self.directory / ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def serving(self) -> None:
        """This worker accepts requests."""
        with self._locked():
            (self.directory / str(self.pid)).touch()

    def serving_workers(self) -> set[int]:
        pids = set()
        for path in self.directory.iterdir():
            if not path.name.isdigit():
                continue
            if _alive(int(path.name)):
                pids.add(int(path.name))
            else:
                path.unlink(missing_ok=True)
        return pids

    def leave(self, force: bool = False) -> bool:
        """Whether this worker may stop serving now; if so it no longer counts as serving."""
        with self._locked():
            if not force and len(self.serving_workers() | {self.pid}) < self.workers:
                return False
            (self.directory / str(self.pid)).unlink(missing_ok=True)
            return True

    @classmethod
    def from_environment(cls, workers: int) -> RecycleGate | None:
        directory = os.environ.get(RECYCLE_DIR_ENV, "")
        if not directory or workers < 2 or not Path(directory).is_dir():
            return None
        return cls(Path(directory), workers)


class HeadWithBodyTransport:
    """A response cycle's transport: the response head leaves with the body's first write.

    The head is the first write once the cycle has started its response (a ``100 Continue``
    comes before that and is not held). It is held until the next write, which then carries
    head and body in one ``send``, or until the event loop's next turn, whichever is first;
    closing the transport sends it first. Everything else is the real transport's.
    """

    def __init__(self, transport: asyncio.Transport, cycle: RequestResponseCycle) -> None:
        self._transport = transport
        self._cycle = cycle
        self._head: bytes | None = None
        self._head_seen = False
        self._flush_handle: asyncio.Handle | None = None

    def write(self, data: bytes) -> None:
        if self._head is not None:
            data = self._take_head() + data
        elif not self._head_seen and self._cycle.response_started:
            self._head_seen = True
            self._head = data
            self._flush_handle = asyncio.get_running_loop().call_soon(self._flush)
            return
        self._transport.write(data)

    def _take_head(self) -> bytes:
        head, self._head = self._head or b"", None
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        return head

    def _flush(self) -> None:
        if self._head is None:
            return
        head = self._take_head()
        if not self._transport.is_closing():
            self._transport.write(head)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def __getattr__(self, name: str) -> Any:  # noqa: ANN401 - the real transport's other attributes
        return getattr(self._transport, name)


class DrainingHttpToolsProtocol(HttpToolsProtocol):
    """Uvicorn's httptools protocol: a response's head leaves with its body; shutdown closes no idle connection."""

    draining = False

    def shutdown(self) -> None:
        """Answer the current or next request with ``Connection: close``; close nothing now."""
        self.draining = True
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.keep_alive = False

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        if self.cycle is None:
            return
        if not isinstance(self.cycle.transport, HeadWithBodyTransport):
            self.cycle.transport = HeadWithBodyTransport(self.transport, self.cycle)  # type: ignore[assignment]
        if self.draining:
            self.cycle.keep_alive = False


class DrainingServer(Server):
    """Uvicorn's server: gated recycles, and a heartbeat and a log line while connections drain."""

    def __init__(self, config: Config, gate: RecycleGate | None = None, max_defer_seconds: float = 30) -> None:
        super().__init__(config)
        self.gate = gate
        self.max_defer_seconds = max_defer_seconds
        self._deferred_since: float | None = None
        self._limit: int | None = None
        if config.limit_max_requests is not None:
            self._limit = config.limit_max_requests + random.randint(0, config.limit_max_requests_jitter)  # noqa: S311

    @property  # type: ignore[override]
    def limit_max_requests(self) -> int | None:
        """The request limit, once the gate lets this worker go (read by ``on_tick`` only).

        Until then the limit reads as unset, so the worker keeps serving. After
        ``max_defer_seconds`` it goes anyway: a sibling away that long is not booting.
        """
        limit = self._limit
        if limit is None or self.gate is None or self.server_state.total_requests < limit:
            return limit
        now = time.monotonic()
        if self._deferred_since is None:
            self._deferred_since = now
        if self.gate.leave(force=now - self._deferred_since >= self.max_defer_seconds):
            return limit
        if self._deferred_since == now:
            log.info("Request limit of %d reached; recycle deferred while a sibling worker is away", limit)
        return None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.started and self.gate is not None:
            self.gate.serving()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if self.gate is not None:
            self.gate.leave(force=True)
        started = time.monotonic()
        open_connections = len(self.server_state.connections)
        heartbeat = asyncio.create_task(self._heartbeat())
        try:
            await super().shutdown(sockets=sockets)
        finally:
            heartbeat.cancel()
        log.info(
            "Drained %d connections in %.1fs (%d left open)",
            open_connections,
            time.monotonic() - started,
            len(self.server_state.connections),
        )

    async def _heartbeat(self) -> None:
        notify = self.config.callback_notify
        if notify is None:
            return
        interval = max(min(self.config.timeout_notify / 2, 1.0), 0.1)
        while True:
            await notify()
            await asyncio.sleep(interval)


class UvicornWorker(uvicorn_worker.UvicornWorker):
    """``uvicorn_worker.UvicornWorker`` with draining connections (see the module docstring).

    The event loop is asyncio's, not uvloop: a saturated uvloop worker serves its open
    connections first and lets new ones wait in the listen queue for seconds (measured:
    a fresh connection waited 4.7 s for its first byte while 64 keep-alive connections
    kept one uvloop worker busy, 0.5 s with asyncio, for about 10% less throughput).
    After a recycle the proxy reopens the drained worker's connections on its siblings,
    so new connections must not starve.
    """

    CONFIG_KWARGS: ClassVar[dict[str, Any]] = {"loop": "asyncio", "http": DrainingHttpToolsProtocol}

    def __init__(self, *args: Any, **kwargs: Any) -> None:  # noqa: ANN401 - Gunicorn's signature
        super().__init__(*args, **kwargs)
        # Bound the drain by the graceful timeout (the arbiter kills stragglers then anyway).
        self.config.timeout_graceful_shutdown = self.cfg.graceful_timeout

    async def _serve(self) -> None:
        self.config.app = self.wsgi
        gate = RecycleGate.from_environment(self.cfg.workers)
        server = DrainingServer(config=self.config, gate=gate, max_defer_seconds=self.cfg.timeout)
        self._install_sigquit_handler()
        await server.serve(sockets=self.sockets)
        if not server.started:
            sys.exit(Arbiter.WORKER_BOOT_ERROR)
