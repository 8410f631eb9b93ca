"""Liveness (``/health``), readiness (``/ready``) and ``/metrics``."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from collections.abc import Awaitable

from fastapi import APIRouter, Request, Response, status
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.concurrency import run_in_threadpool

from fastapi_fleet_app import db, metrics
from fastapi_fleet_app.resources import Deps
from fastapi_fleet_app.responses import OrjsonResponse
from fastapi_fleet_app.settings import package_version

log = logging.getLogger(__name__)
router = APIRouter(tags=["operations"])
_HOSTNAME = socket.gethostname()
_VERSION = package_version()


@router.get("/health")
async def health(deps: Deps) -> Response:
    """Liveness: the process serves requests; no dependency is contacted. Names the running release."""
    return OrjsonResponse(
        {"status": "ok", "version": _VERSION, "release": deps.settings.release, "hostname": _HOSTNAME}
    )


async def _check(name: str, probe: Awaitable[None], seconds: float) -> str:
    try:
        async with asyncio.timeout(seconds):
            await probe
    except Exception as exc:
        log.warning("readiness check failed", extra={"dependency": name, "error": repr(exc)})
        return f"error: {type(exc).__name__}"
    return "ok"


@router.get("/ready")
async def ready(deps: Deps) -> Response:
    """Readiness: 200 when PostgreSQL and Redis both answer in time, else 503; names the running release."""
    seconds = deps.settings.ready_timeout_seconds
    postgres, redis = await asyncio.gather(
        _check("postgres", db.ping(deps.pool, seconds), seconds),
        _check("redis", deps.cache.ping(), seconds),
    )
    ok = postgres == "ok" and redis == "ok"
    return OrjsonResponse(
        {
            "status": "ok" if ok else "unavailable",
            "release": deps.settings.release,
            "checks": {"postgres": postgres, "redis": redis},
        },
        status.HTTP_200_OK if ok else status.HTTP_503_SERVICE_UNAVAILABLE,
    )


def _metrics_allowed(request: Request, deps: Deps) -> bool:
    """Whether the client (as the trusted proxies' X-Forwarded-For names it) is in APP_METRICS_ALLOW_FROM."""
    if request.client is None:
        return False
    try:
        address = ipaddress.ip_address(request.client.host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return any(address in network for network in deps.settings.metrics_networks)


@router.get("/metrics")
async def prometheus_metrics(request: Request, deps: Deps) -> Response:
    """Prometheus text for loopback and the monitoring networks only (APP_METRICS_ALLOW_FROM)."""
    if not _metrics_allowed(request, deps):
        return OrjsonResponse(
            {"detail": "metrics are served to the monitoring network only"}, status.HTTP_403_FORBIDDEN
        )
    metrics.observe_pool(deps.pool)
    return Response(await run_in_threadpool(metrics.render), media_type=CONTENT_TYPE_LATEST)
