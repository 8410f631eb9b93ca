"""JSON responses rendered with orjson (UTC datetimes end in ``Z``)."""

from __future__ import annotations

import orjson
from starlette.responses import Response

_OPTIONS = orjson.OPT_UTC_Z


def dumps(content: object) -> bytes:
    return orjson.dumps(content, option=_OPTIONS)


class OrjsonResponse(Response):
    """Serializes plain data with orjson; ``bytes`` are sent as already-encoded JSON."""

    media_type = "application/json"

    def render(self, content: object) -> bytes:
        return content if isinstance(content, bytes) else dumps(content)
