"""Sustained HTTP load with exact outcome counts (``fleet load``), runnable in the background.

``wrk`` (Debian's package) drives the load; a Lua script counts every request it sends
and every response by status, and prints one machine-readable line at the end that
:func:`parse_result` reads. So a run reports *sent / 2xx / non-2xx / socket errors / p99*
(and requests per second) exactly, 3xx included in non-2xx.

Use it blocking::

    result = run_load("https://10.231.0.21/health", duration=60, connections=64)
    print(result.line())

or in the background while the caller acts (stops a service, cuts a link, ...)::

    with start_load("https://10.231.0.21/health", duration=60) as load:
        ...  # act while the load runs
    result = load.result()

``start_steady`` sends a fixed rate of the app's own requests instead (open loop, mixed
POST/GET/PATCH and /health, see :mod:`fleet.load.steady`) until it is stopped::

    with start_steady("https://10.231.0.21", rate=20) as load:
        ...  # deploy while the load runs
    result = load.result()  # sent / 2xx / non-2xx / errors by kind / max gap

Targets are limited to loopback and the lab network unless ``allow`` says otherwise,
and every run is bounded in time (wrk's own duration, and a hard limit on the process).
"""

from __future__ import annotations

from fleet.load.run import LoadResult, LoadRun, SocketErrors, parse_result, run_load, start_load
from fleet.load.steady import SteadyLoad, run_steady, start_steady
from fleet.load.tally import SteadyResult
from fleet.load.targets import DEFAULT_ALLOWED_NETWORKS, LoadError, check_target

__all__ = [
    "DEFAULT_ALLOWED_NETWORKS",
    "LoadError",
    "LoadResult",
    "LoadRun",
    "SocketErrors",
    "SteadyLoad",
    "SteadyResult",
    "check_target",
    "parse_result",
    "run_load",
    "run_steady",
    "start_load",
    "start_steady",
]
