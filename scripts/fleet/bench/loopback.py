"""``fleet bench loopback``: the app alone, on this machine, against throwaway PostgreSQL and Redis.

No lab and no deployment: PostgreSQL and Redis in temporary directories, two Gunicorn
instances of ``fastapi-fleet-app`` on loopback (cache on, and cache off as the database
baseline), and wrk (``fleet.load``) from another process, a bounded duration each. It
answers what the cache and the database cost the app's code, quickly, while developing it;
``fleet bench`` measures the deployed stack.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rich.table import Table

from fleet.bench.report import cache_hits_in
from fleet.errors import FleetError
from fleet.load import LoadError, LoadResult, run_load
from fleet.ops.output import console

if TYPE_CHECKING:
    from fleet.bench.throwaway import GunicornServer

ITEM_ID = 1
LIST_PATH = "/api/v1/items?limit=20&after=1000"


@dataclass(frozen=True)
class Result:
    """One measured run; latencies in milliseconds, errors are non-2xx responses plus socket errors."""

    name: str
    path: str
    requests_per_second: float
    requests: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    errors: int

    @classmethod
    def of(cls, name: str, path: str, load: LoadResult) -> Result:
        return cls(
            name=name,
            path=path,
            requests_per_second=round(load.rps, 1),
            requests=load.responses,
            p50_ms=load.p50_ms,
            p95_ms=load.p95_ms,
            p99_ms=load.p99_ms,
            errors=load.non_2xx + load.errors.total,
        )


def ratios(results: list[Result]) -> dict[str, float]:
    """Cache hit over database read and over /health, and the list over /health (requests per second)."""
    rps = {result.name: result.requests_per_second for result in results}
    cached = rps["item (cache hit)"]
    return {
        "cache hit / database read": round(cached / rps["item (database read)"], 3),
        "cache hit / health": round(cached / rps["health"], 3),
        "list / health": round(rps["list (database)"] / rps["health"], 3),
    }


def _cache_hits(base_url: str) -> float:
    import urllib.request

    with urllib.request.urlopen(base_url + "/metrics", timeout=10) as response:  # noqa: S310 - loopback http
        return cache_hits_in(response.read().decode())


def _seed(database_url: str, count: int) -> None:
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO items (name, description)"
            " SELECT 'item ' || n, repeat('x', 100) FROM generate_series(1, %s) AS n",
            (count,),
        )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--duration", type=int, default=10, help="seconds per measured run (default 10)")
    parser.add_argument("--warmup", type=int, default=2, help="unmeasured seconds before each run (default 2)")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections (default 64)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    parser.add_argument("--workers", type=int, default=2, help="Gunicorn workers per instance (default 2)")
    parser.add_argument("--items", type=int, default=10_000, help="rows to seed (default 10000)")
    parser.add_argument("--json", action="store_true", help="print results as JSON")
    parser.set_defaults(handler=run)


def _check(args: argparse.Namespace) -> None:
    """Refuse bad numbers before any server starts (wrk's presence is checked by fleet.load)."""
    for name in ("duration", "connections", "threads", "workers", "items"):
        if getattr(args, name) < 1:
            raise FleetError(f"--{name} must be at least 1")
    if args.duration > 120 or args.warmup > 60:
        raise FleetError("--duration is at most 120 and --warmup at most 60 seconds")
    if args.warmup < 0:
        raise FleetError("--warmup must not be negative")
    if args.items < 1020:
        raise FleetError("--items must be at least 1020 (the list reads 20 rows after id 1000)")
    if args.connections < args.threads:
        raise FleetError("--connections must be at least --threads (wrk needs one connection per thread)")


def _load(url: str, args: argparse.Namespace, seconds: int) -> LoadResult:
    try:
        return run_load(url, duration=seconds, connections=args.connections, threads=args.threads)
    except LoadError as exc:
        raise FleetError(str(exc)) from None


def _report(results: list[Result], hit_ratio: float, args: argparse.Namespace) -> None:
    if args.json:
        document = {
            "kind": "fleet-bench-loopback",
            "workers": args.workers,
            "connections": args.connections,
            "threads": args.threads,
            "duration_s": args.duration,
            "cache_hit_ratio": hit_ratio,
            "results": [asdict(result) for result in results],
            "ratios": ratios(results),
        }
        print(json.dumps(document, indent=2))
        return
    out = console()
    grid = Table(
        title=f"fleet bench loopback: {args.workers} Gunicorn workers, wrk {args.threads} threads x"
        f" {args.connections} connections, {args.duration}s per run (wrk shares this machine's CPUs)"
    )
    for column in ("scenario", "path", "req/s", "p50 ms", "p95 ms", "p99 ms", "errors"):
        grid.add_column(column, justify="left" if column in ("scenario", "path") else "right")
    for r in results:
        grid.add_row(
            r.name,
            r.path,
            f"{r.requests_per_second:.0f}",
            f"{r.p50_ms:.2f}",
            f"{r.p95_ms:.2f}",
            f"{r.p99_ms:.2f}",
            str(r.errors),
        )
    out.print(grid)
    out.print(f"cache hit ratio during the cache-hit run: {hit_ratio:.3f}")
    for label, ratio in ratios(results).items():
        out.print(f"ratio {label}: {ratio:.2f}")


def run(args: argparse.Namespace) -> int:
    _check(args)
    # The harness's heavy imports (the app, its migrations, drivers) load only when it runs.
    from fastapi_fleet_app import migrate
    from fleet.bench.throwaway import GunicornServer, PostgresServer, RedisServer, app_environment

    with ExitStack() as stack:
        postgres = stack.enter_context(PostgresServer())
        redis_server = stack.enter_context(RedisServer())
        migrate.upgrade(postgres.url)
        _seed(postgres.url, args.items)
        logs = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="fleet-bench-")))

        def gunicorn(name: str, **settings: str) -> GunicornServer:
            env = app_environment(postgres.url, redis_server.url, error_log=str(logs / f"{name}.log"), **settings)
            env["PROMETHEUS_MULTIPROC_DIR"] = str(logs / f"{name}-metrics")
            return stack.enter_context(GunicornServer(env, workers=args.workers))

        # No worker recycling mid-run: a restart would close wrk's keep-alive connections.
        cached = gunicorn("cached", max_requests="0")
        uncached = gunicorn("uncached", max_requests="0", cache_ttl_seconds="0")
        item = f"/api/v1/items/{ITEM_ID}"
        scenarios = [
            ("health", cached, "/health"),
            ("item (cache hit)", cached, item),
            ("item (database read)", uncached, item),
            ("list (database)", uncached, LIST_PATH),
        ]
        results = []
        hit_ratio = 0.0
        for name, server, path in scenarios:
            url = server.base_url + path
            if args.warmup:
                _load(url, args, args.warmup)
            hits_before = _cache_hits(server.base_url)
            load = _load(url, args, args.duration)
            if server is cached and path == item:
                hit_ratio = (_cache_hits(server.base_url) - hits_before) / max(load.ok, 1)
            results.append(Result.of(name, path, load))
    _report(results, hit_ratio, args)
    return 1 if any(result.errors for result in results) else 0
