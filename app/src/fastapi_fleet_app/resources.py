"""Per-process resources opened in the lifespan, reachable from requests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from fastapi_fleet_app.cache import ItemCache
from fastapi_fleet_app.db import Pool
from fastapi_fleet_app.idempotency import Idempotency
from fastapi_fleet_app.settings import Settings


@dataclass(frozen=True, slots=True)
class Resources:
    settings: Settings
    pool: Pool
    cache: ItemCache
    idempotency: Idempotency


async def get_resources(request: Request) -> Resources:
    resources: Resources = request.app.state.resources
    return resources


Deps = Annotated[Resources, Depends(get_resources)]
