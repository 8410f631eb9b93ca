"""Application factory and lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import psycopg
from fastapi import FastAPI, Request, Response, status

from fastapi_fleet_app import metrics
from fastapi_fleet_app.api import items
from fastapi_fleet_app.cache import ItemCache, create_redis
from fastapi_fleet_app.db import create_pool
from fastapi_fleet_app.health import router as health_router
from fastapi_fleet_app.idempotency import Idempotency
from fastapi_fleet_app.logs import configure_logging
from fastapi_fleet_app.middleware import BodySizeLimitMiddleware, RequestContextMiddleware
from fastapi_fleet_app.resources import Resources
from fastapi_fleet_app.responses import OrjsonResponse
from fastapi_fleet_app.settings import Settings, package_version

log = logging.getLogger(__name__)
POOL_METRICS_INTERVAL = 5.0


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Open the PostgreSQL pool and the Redis connections; close both on shutdown.

    The pool connects in the background, so the app starts (and ``/ready`` says 503)
    while PostgreSQL is still down.
    """
    settings: Settings = app.state.settings
    pool = create_pool(settings)
    await pool.open(wait=False)
    cache = ItemCache(create_redis(settings), settings.cache_ttl_seconds, settings.cache_retry_seconds)
    await cache.warm(settings.redis_max_connections)
    idempotency = Idempotency(pool, settings.idempotency_retention_seconds)
    app.state.resources = Resources(settings=settings, pool=pool, cache=cache, idempotency=idempotency)
    metrics.BUILD_INFO.labels(package_version(), settings.release).set(1)
    observer = asyncio.create_task(metrics.observe_pool_forever(pool, POOL_METRICS_INTERVAL))
    log.info("started", extra={"release": settings.release})
    try:
        yield
    finally:
        observer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await observer
        await cache.close()
        await pool.close()
        log.info("stopped")


async def _database_unavailable(request: Request, exc: Exception) -> Response:
    metrics.DB_ERRORS.inc()
    log.warning("database unavailable", extra={"error": f"{type(exc).__name__}: {exc}"})
    return OrjsonResponse(
        {"detail": "database unavailable"},
        status.HTTP_503_SERVICE_UNAVAILABLE,
        {"Retry-After": "1"},
    )


def create_app(settings: Settings) -> FastAPI:
    """Build the ASGI app; resources are opened by its lifespan."""
    configure_logging(settings.log_level, settings.log_file)
    docs = settings.docs_enabled
    app = FastAPI(
        title="fastapi-fleet-app",
        version=settings.release,
        lifespan=lifespan,
        # Off unless APP_DOCS_ENABLED: a production API does not publish its schema and a UI to everyone.
        docs_url="/docs" if docs else None,
        redoc_url="/redoc" if docs else None,
        openapi_url="/openapi.json" if docs else None,
    )
    app.state.settings = settings
    app.include_router(health_router)
    app.include_router(items.router)
    app.add_exception_handler(psycopg.OperationalError, _database_unavailable)
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestContextMiddleware)  # added last: outermost
    return app
