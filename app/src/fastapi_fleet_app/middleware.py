"""Request id, access log line, metrics, body size limit and last-resort error handling."""

from __future__ import annotations

import logging
import re
import time
import uuid

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fastapi_fleet_app.logs import request_id_var
from fastapi_fleet_app.metrics import HTTP_DURATION, HTTP_IN_PROGRESS, HTTP_REQUESTS
from fastapi_fleet_app.responses import OrjsonResponse

access_log = logging.getLogger("fastapi_fleet_app.access")
error_log = logging.getLogger("fastapi_fleet_app.error")

REQUEST_ID_HEADER = b"x-request-id"
_VALID_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:@/+=-]{1,128}")
_TOO_LARGE = "request body too large"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def _request_id(scope: Scope) -> str:
    """The client's X-Request-ID when it is sane, otherwise a new random id."""
    headers: list[tuple[bytes, bytes]] = scope["headers"]
    for name, value in headers:
        if name == REQUEST_ID_HEADER and _VALID_REQUEST_ID.fullmatch(value):
            return value.decode("ascii")
    return uuid.uuid4().hex


def _route(scope: Scope) -> str:
    """Route template (``/api/v1/items/{item_id}``), bounded for metric labels."""
    return getattr(scope.get("route"), "path", None) or "unmatched"


class RequestContextMiddleware:
    """Outermost app middleware: one JSON log line and metric sample per request.

    An unhandled exception is logged with its traceback and answered with a JSON 500
    that still carries the request id.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope)
        token = request_id_var.set(request_id)
        status = 500
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                started = True
                status = message["status"]
                message["headers"] = [
                    *message.get("headers", ()),
                    (REQUEST_ID_HEADER, request_id.encode("ascii")),
                ]
            await send(message)

        start = time.perf_counter()
        HTTP_IN_PROGRESS.inc()
        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            if started:  # nothing more can be sent; the server logs and closes
                raise
            error_log.exception("unhandled error", extra={"path": scope["path"]})
            response = OrjsonResponse({"detail": "Internal Server Error"}, 500)
            await response(scope, receive, send_with_id)
        finally:
            HTTP_IN_PROGRESS.dec()
            self._record(scope, status, time.perf_counter() - start)
            request_id_var.reset(token)

    @staticmethod
    def _record(scope: Scope, status: int, duration: float) -> None:
        method = scope["method"] if scope["method"] in _METHODS else "OTHER"
        route = _route(scope)
        labels = (method, route, str(status))
        HTTP_REQUESTS.labels(*labels).inc()
        HTTP_DURATION.labels(*labels).observe(duration)
        level = logging.ERROR if status >= 500 else logging.INFO
        if not access_log.isEnabledFor(level):
            return
        client = scope.get("client")
        fields = {
            "method": scope["method"],
            "route": route,
            "path": scope["path"],
            "status": status,
            "duration_ms": round(duration * 1000, 3),
            "client": client[0] if client else None,
        }
        # makeRecord + handle skips Logger.log's stack walk for the caller's file/line.
        access_log.handle(access_log.makeRecord(access_log.name, level, "", 0, "request", (), None, extra=fields))


class BodySizeLimitMiddleware:
    """Answer 413 to request bodies over ``max_bytes``, declared or streamed (chunked)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                await OrjsonResponse({"detail": _TOO_LARGE}, 413)(scope, receive, send)
                return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                raise HTTPException(413, _TOO_LARGE)
            return message

        await self.app(scope, limited_receive, send)
