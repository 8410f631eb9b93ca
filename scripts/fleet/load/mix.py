"""What ``fleet load steady`` sends: the bundled app's item API, or ``/health`` alone.

The ``items`` mix repeats a cycle of four requests: POST ``/api/v1/items`` (a success only
on 201; the new id is recorded), GET and PATCH of the item this run created last, and
GET ``/health``. Until the first POST has come back, the GET and PATCH slots ask
``/health`` instead. Bodies follow the app's ``ItemCreate`` and ``ItemPatch`` models.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

ITEMS = "/api/v1/items"
HEALTH = "/health"


@dataclass(frozen=True)
class Call:
    """One request of the mix; ``expect`` is the one status that counts as success (else any 2xx)."""

    method: str
    path: str
    body: dict[str, str] | None = None
    expect: int | None = None

    def succeeded(self, status: int) -> bool:
        return status == self.expect if self.expect is not None else 200 <= status < 300


class Mix(Protocol):
    """Chooses each request and learns from its response (called on the load's event loop only)."""

    name: str

    def call(self, index: int) -> Call: ...

    def observe(self, call: Call, response: httpx.Response) -> None: ...

    @property
    def created_ids(self) -> tuple[int, ...]: ...


class HealthMix:
    """GET ``/health``, every time."""

    name = "health"

    def call(self, index: int) -> Call:
        return Call("GET", HEALTH)

    def observe(self, call: Call, response: httpx.Response) -> None:
        pass

    @property
    def created_ids(self) -> tuple[int, ...]:
        return ()


class ItemsMix:
    """POST, GET, PATCH, ``/health``, over and over; GET and PATCH use the item created last."""

    name = "items"

    def __init__(self, tag: str | None = None) -> None:
        self.tag = tag or uuid.uuid4().hex[:8]
        self._created: list[int] = []

    def call(self, index: int) -> Call:
        slot = index % 4
        if slot == 0:
            body = {"name": f"fleet-load {self.tag} {index}", "description": "created by fleet load steady"}
            return Call("POST", ITEMS, body, expect=201)
        if slot == 3 or not self._created:
            return Call("GET", HEALTH)
        path = f"{ITEMS}/{self._created[-1]}"
        if slot == 1:
            return Call("GET", path)
        return Call("PATCH", path, {"description": f"patched by request {index}"})

    def observe(self, call: Call, response: httpx.Response) -> None:
        if call.method == "POST" and response.status_code == 201:
            item_id = _json(response).get("id")
            if isinstance(item_id, int):
                self._created.append(item_id)

    @property
    def created_ids(self) -> tuple[int, ...]:
        return tuple(self._created)


MIXES: dict[str, Callable[[], Mix]] = {"items": ItemsMix, "health": HealthMix}

# A per-response value to count (e.g. the release that answered); None: nothing to count.
Collect = Callable[[Call, httpx.Response], str | None]


def health_release(call: Call, response: httpx.Response) -> str | None:
    """The release a 2xx ``/health`` answer names (its ``release`` field, else ``version``)."""
    if call.path != HEALTH or not 200 <= response.status_code < 300:
        return None
    body = _json(response)
    value = body.get("release", body.get("version"))
    return str(value) if value is not None else None


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = json.loads(response.content)
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
