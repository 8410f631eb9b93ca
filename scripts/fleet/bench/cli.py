"""``fleet bench``: load-test the app under Gunicorn against throwaway PostgreSQL and Redis.

Everything runs on loopback: PostgreSQL and Redis in temporary directories, two Gunicorn
instances of ``fastapi-fleet-app`` (cache on, and cache off as the database baseline),
and ``wrk`` as the load generator in its own process, for a bounded duration each.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import tempfile
import urllib.request
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from fleet.errors import FleetError

if TYPE_CHECKING:
    from fleet.bench.throwaway import GunicornServer

ITEM_ID = 1
LIST_PATH = "/api/v1/items?limit=20&after=1000"
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


@dataclass(frozen=True)
class Result:
    """One wrk run; latencies in milliseconds."""

    name: str
    path: str
    requests_per_second: float
    requests: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    errors: int


def _milliseconds(value: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value)
    if match is None:
        raise ValueError(f"unparsable wrk latency {value!r}")
    return float(match[1]) * _UNITS[match[2]]


def parse_wrk(name: str, path: str, output: str) -> Result:
    """Read ``wrk --latency`` output; errors count non-2xx/3xx and socket errors."""
    percentiles = dict(re.findall(r"^\s+(50|90|99)%\s+(\S+)\s*$", output, re.MULTILINE))
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.MULTILINE)
    total = re.search(r"^\s+(\d+) requests in", output, re.MULTILINE)
    if rps is None or total is None or len(percentiles) != 3:
        raise ValueError(f"unexpected wrk output:\n{output}")
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    errors = int(non_2xx[1]) if non_2xx else 0
    errors += sum(int(n) for n in sockets.groups()) if sockets else 0
    return Result(
        name=name,
        path=path,
        requests_per_second=float(rps[1]),
        requests=int(total[1]),
        p50_ms=_milliseconds(percentiles["50"]),
        p90_ms=_milliseconds(percentiles["90"]),
        p99_ms=_milliseconds(percentiles["99"]),
        errors=errors,
    )


def _wrk(url: str, args: argparse.Namespace, seconds: int) -> str:
    command = ["wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{seconds}s", "--latency", "--timeout", "5s"]
    done = subprocess.run([*command, url], capture_output=True, text=True, check=True, timeout=seconds + 60)  # noqa: S603
    return done.stdout


def _cache_hits(base_url: str) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(base_url + "/metrics", timeout=10) as response:  # noqa: S310 - loopback http
        text = response.read().decode()
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "app_cache_requests_total" and sample.labels.get("result") == "hit"
    )


def _seed(database_url: str, count: int) -> None:
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO items (name, description)"
            " SELECT 'item ' || n, repeat('x', 100) FROM generate_series(1, %s) AS n",
            (count,),
        )


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "bench",
        help="load-test the app on loopback (throwaway PostgreSQL, Redis, Gunicorn; wrk)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--duration", type=int, default=10, help="seconds per measured run (default 10)")
    parser.add_argument("--warmup", type=int, default=2, help="unmeasured seconds before each run (default 2)")
    parser.add_argument("--connections", type=int, default=64, help="wrk connections (default 64)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    parser.add_argument("--workers", type=int, default=2, help="Gunicorn workers per instance (default 2)")
    parser.add_argument("--items", type=int, default=10_000, help="rows to seed (default 10000)")
    parser.add_argument("--json", action="store_true", help="print results as JSON")
    parser.set_defaults(handler=run)


def _report(results: list[Result], hit_ratio: float, args: argparse.Namespace) -> None:
    by_name = {result.name: result for result in results}
    cached = by_name["item (cache hit)"].requests_per_second
    ratios = {
        "cache hit / database read": cached / by_name["item (database read)"].requests_per_second,
        "cache hit / health": cached / by_name["health"].requests_per_second,
        "list / health": by_name["list (database)"].requests_per_second / by_name["health"].requests_per_second,
    }
    if args.json:
        document = {
            "workers": args.workers,
            "connections": args.connections,
            "threads": args.threads,
            "duration_s": args.duration,
            "cache_hit_ratio": hit_ratio,
            "results": [asdict(result) for result in results],
            "ratios": ratios,
        }
        print(json.dumps(document, indent=2))
        return
    print(
        f"Gunicorn workers: {args.workers}, wrk: {args.threads} threads, {args.connections} connections,"
        f" {args.duration}s per run (load generator shares this machine's CPUs)"
    )
    print(f"{'scenario':<22} {'path':<34} {'req/s':>10} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'errors':>7}")
    for r in results:
        print(
            f"{r.name:<22} {r.path:<34} {r.requests_per_second:>10.0f}"
            f" {r.p50_ms:>8.2f} {r.p90_ms:>8.2f} {r.p99_ms:>8.2f} {r.errors:>7}"
        )
    print(f"cache hit ratio during the cache-hit run: {hit_ratio:.3f}")
    for label, ratio in ratios.items():
        print(f"ratio {label}: {ratio:.2f}")


def _check(args: argparse.Namespace) -> None:
    """Refuse bad numbers and a missing load generator before any server starts."""
    for name in ("duration", "connections", "threads", "workers", "items"):
        if getattr(args, name) < 1:
            raise FleetError(f"--{name} must be at least 1")
    if args.warmup < 0:
        raise FleetError("--warmup must not be negative")
    if args.connections < args.threads:
        raise FleetError("--connections must be at least --threads (wrk needs one connection per thread)")
    if shutil.which("wrk") is None:
        raise FleetError("wrk not found (apt-get install wrk)")


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
                _wrk(url, args, args.warmup)
            hits_before = _cache_hits(server.base_url)
            result = parse_wrk(name, path, _wrk(url, args, args.duration))
            if server is cached and path == item:
                hit_ratio = (_cache_hits(server.base_url) - hits_before) / max(result.requests, 1)
            results.append(result)
    _report(results, hit_ratio, args)
    return 1 if any(result.errors for result in results) else 0
