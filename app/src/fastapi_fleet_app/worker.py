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
"""

from __future__ import annotations

import asyncio
import logging
import socket
import sys
import time
from typing import Any, ClassVar

import uvicorn_worker
from gunicorn.arbiter import Arbiter
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import Server

log = logging.getLogger("uvicorn.error")


class DrainingHttpToolsProtocol(HttpToolsProtocol):
    """Uvicorn's httptools protocol whose shutdown never closes an idle connection."""

    draining = False

    def shutdown(self) -> None:
        """Answer the current or next request with ``Connection: close``; close nothing now."""
        self.draining = True
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.keep_alive = False

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        if self.draining and self.cycle is not None:
            self.cycle.keep_alive = False


class DrainingServer(Server):
    """Uvicorn's server, with a heartbeat and a log line while connections drain."""

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
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
    """``uvicorn_worker.UvicornWorker`` with draining connections (see the module docstring)."""

    CONFIG_KWARGS: ClassVar[dict[str, Any]] = {"loop": "auto", "http": DrainingHttpToolsProtocol}

    def __init__(self, *args: Any, **kwargs: Any) -> None:  # noqa: ANN401 - Gunicorn's signature
        super().__init__(*args, **kwargs)
        # Bound the drain by the graceful timeout (the arbiter kills stragglers then anyway).
        self.config.timeout_graceful_shutdown = self.cfg.graceful_timeout

    async def _serve(self) -> None:
        self.config.app = self.wsgi
        server = DrainingServer(config=self.config)
        self._install_sigquit_handler()
        await server.serve(sockets=self.sockets)
        if not server.started:
            sys.exit(Arbiter.WORKER_BOOT_ERROR)
