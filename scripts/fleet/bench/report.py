"""Figures of ``fleet bench`` (the deployed stack): measurements, their ratios, the table and the JSON.

Pure functions of the measurements, so that what the report says is tested without a lab.
A measurement is one endpoint on one route of one deployment, measured in one or more
rounds; its figures are the medians over the rounds (failures are summed). Ratios are of
requests per second within one run, because absolute figures drift on a shared machine:

- ``tuned/naive``: the bundle's deployment over the naive baseline, per endpoint and route;
  the static ceiling's own ratio (``ceiling drift``) tells how much the machine changed
  between the two deployments' measurements (1.0: not at all);
  divided by that drift, the ``ceiling-normalised`` ratios take the machine's change out;
- ``proxied/direct``: through the load balancer over straight to one app host (the proxy's cost);
- ``app/ceiling``: through the load balancer over nginx's own static answer on the same host.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from rich.table import Table

ENDPOINTS = ("health", "item", "list")
ROUTES = ("proxied", "direct")
CEILING = ("static", "ceiling")  # the endpoint and route of nginx's own answer
DEPLOYMENTS = ("naive", "tuned")

ENDPOINT_LABELS = {
    "health": "GET /health",
    "item": "item read (cache hit)",
    "list": "list (database)",
    "static": "nginx static",
}
ROUTE_LABELS = {"proxied": "load balancer", "direct": "app host direct", "ceiling": "load balancer"}


def cache_hits_in(metrics: str) -> float:
    """The app's cache hits in one /metrics answer (Prometheus text), summed over the workers."""
    from prometheus_client.parser import text_string_to_metric_families

    return sum(
        sample.value
        for family in text_string_to_metric_families(metrics)
        for sample in family.samples
        if sample.name == "app_cache_requests_total" and sample.labels.get("result") == "hit"
    )


@dataclass(frozen=True)
class RunFigures:
    """One measured wrk run: requests per second, latency percentiles (ms), counts, the host's load."""

    rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    sent: int
    ok: int
    non_2xx: int
    errors: int
    duration_s: float
    load1: float = 0.0
    cache_hit_ratio: float | None = None


@dataclass(frozen=True)
class Measurement:
    """One endpoint on one route of one deployment, over ``runs`` rounds."""

    deployment: str
    endpoint: str
    route: str
    url: str
    runs: tuple[RunFigures, ...] = field(default=())

    def _median(self, name: str) -> float:
        return float(statistics.median(getattr(run, name) for run in self.runs)) if self.runs else 0.0

    @property
    def rps(self) -> float:
        return self._median("rps")

    @property
    def p50_ms(self) -> float:
        return self._median("p50_ms")

    @property
    def p95_ms(self) -> float:
        return self._median("p95_ms")

    @property
    def p99_ms(self) -> float:
        return self._median("p99_ms")

    @property
    def failures(self) -> int:
        """Responses that were not 2xx plus socket errors, over every round."""
        return sum(run.non_2xx + run.errors for run in self.runs)

    @property
    def responses(self) -> int:
        return sum(run.ok + run.non_2xx for run in self.runs)

    @property
    def spread(self) -> float:
        """(max - min) / median of the rounds' requests per second: how steady the machine was."""
        values = [run.rps for run in self.runs]
        median = self.rps
        return (max(values) - min(values)) / median if len(values) > 1 and median > 0 else 0.0

    @property
    def cache_hit_ratio(self) -> float | None:
        values = [run.cache_hit_ratio for run in self.runs if run.cache_hit_ratio is not None]
        return min(values) if values else None


def _index(measurements: Iterable[Measurement]) -> dict[tuple[str, str, str], Measurement]:
    return {(m.deployment, m.endpoint, m.route): m for m in measurements}


def _ratio(numerator: Measurement | None, denominator: Measurement | None) -> float | None:
    if numerator is None or denominator is None or denominator.rps <= 0 or not numerator.runs:
        return None
    return round(numerator.rps / denominator.rps, 3)


def ratios(measurements: Sequence[Measurement]) -> dict[str, dict[str, Any]]:
    """Every ratio the run allows (a deployment or route that was not measured has none)."""
    by_key = _index(measurements)
    deployments = [d for d in DEPLOYMENTS if any(m.deployment == d for m in measurements)]
    result: dict[str, dict[str, Any]] = {"tuned/naive": {}, "proxied/direct": {}, "app/ceiling": {}}
    if {"tuned", "naive"} <= set(deployments):
        for route in ROUTES:
            row = {e: _ratio(by_key.get(("tuned", e, route)), by_key.get(("naive", e, route))) for e in ENDPOINTS}
            result["tuned/naive"][route] = row
        drift = _ratio(by_key.get(("tuned", *CEILING)), by_key.get(("naive", *CEILING)))
        result["tuned/naive"]["ceiling drift"] = drift
        # The same ratios divided by the drift: what is left when the machine's change between the
        # two deployments' measurements is taken out (the ceiling stands for the machine's speed).
        result["tuned/naive"]["ceiling-normalised"] = {
            route: {
                e: None if value is None or not drift else round(value / drift, 3)
                for e, value in result["tuned/naive"][route].items()
            }
            for route in ROUTES
        }
    for deployment in deployments:
        result["proxied/direct"][deployment] = {
            e: _ratio(by_key.get((deployment, e, "proxied")), by_key.get((deployment, e, "direct"))) for e in ENDPOINTS
        }
        result["app/ceiling"][deployment] = {
            e: _ratio(by_key.get((deployment, e, "proxied")), by_key.get((deployment, *CEILING))) for e in ENDPOINTS
        }
    return result


def _cells(row: dict[str, float | None]) -> str:
    return "  ".join(f"{e} {'-' if row.get(e) is None else format(row[e], '.2f')}" for e in ENDPOINTS)


def headline(measured: dict[str, dict[str, Any]]) -> list[str]:
    """The ratios as lines of text, the first thing to read of a run."""
    lines = []
    width = len("tuned/naive through the load balancer: ")
    tuned_naive = measured.get("tuned/naive", {})
    if tuned_naive:
        lines.append(f"{'tuned/naive through the load balancer:':<{width}}{_cells(tuned_naive['proxied'])}")
        lines.append(f"{'tuned/naive direct to the app host:':<{width}}{_cells(tuned_naive['direct'])}")
        normalised = tuned_naive.get("ceiling-normalised", {}).get("proxied")
        if normalised and tuned_naive.get("ceiling drift"):
            lines.append(f"{'  the same over the ceiling drift:':<{width}}{_cells(normalised)}")
    for family in ("proxied/direct", "app/ceiling"):
        for deployment, row in measured.get(family, {}).items():
            lines.append(f"{f'{family} ({deployment}):':<{width}}{_cells(row)}")
    drift = tuned_naive.get("ceiling drift")
    if drift is not None:
        lines.append(f"ceiling drift tuned/naive (nginx static; 1.00 = the machine did not change): {drift:.2f}")
    return lines


def load_summary(measurements: Sequence[Measurement], cpus: int) -> dict[str, Any]:
    """How busy the machine was when the runs started (1-minute load average, every process on it)."""
    loads = [run.load1 for m in measurements for run in m.runs]
    if not loads:
        return {"cpus": cpus, "load1_min": None, "load1_median": None, "load1_max": None}
    return {
        "cpus": cpus,
        "load1_min": round(min(loads), 2),
        "load1_median": round(statistics.median(loads), 2),
        "load1_max": round(max(loads), 2),
    }


def table(measurements: Sequence[Measurement], rounds: int) -> Table:
    """One row per measurement: requests/s, p50/p95/p99, failures, spread over the rounds."""
    grid = Table(title=f"fleet bench: medians of {rounds} round{'s' if rounds != 1 else ''}")
    for column, justify in (
        ("deployment", "left"),
        ("endpoint", "left"),
        ("route", "left"),
        ("req/s", "right"),
        ("p50 ms", "right"),
        ("p95 ms", "right"),
        ("p99 ms", "right"),
        ("failed", "right"),
        ("spread", "right"),
    ):
        grid.add_column(column, justify=justify)  # type: ignore[arg-type]
    for m in measurements:
        grid.add_row(
            m.deployment,
            ENDPOINT_LABELS.get(m.endpoint, m.endpoint),
            ROUTE_LABELS.get(m.route, m.route),
            f"{m.rps:.0f}",
            f"{m.p50_ms:.2f}",
            f"{m.p95_ms:.2f}",
            f"{m.p99_ms:.2f}",
            str(m.failures),
            f"{m.spread * 100:.0f}%",
        )
    return grid


def document(
    measurements: Sequence[Measurement],
    *,
    settings: dict[str, Any],
    stack: dict[str, Any],
    deployments: list[dict[str, Any]],
    cpus: int,
) -> dict[str, Any]:
    """The JSON of a run: what was deployed and measured, every round, the ratios, the machine's load."""
    return {
        "kind": "fleet-bench-stack",
        "settings": settings,
        "stack": stack,
        "machine": load_summary(measurements, cpus),
        "deployments": deployments,
        "ratios": ratios(measurements),
        "measurements": [
            {
                "deployment": m.deployment,
                "endpoint": m.endpoint,
                "route": m.route,
                "url": m.url,
                "rps": round(m.rps, 1),
                "p50_ms": round(m.p50_ms, 3),
                "p95_ms": round(m.p95_ms, 3),
                "p99_ms": round(m.p99_ms, 3),
                "failures": m.failures,
                "spread": round(m.spread, 3),
                "cache_hit_ratio": m.cache_hit_ratio,
                "runs": [asdict(run) for run in m.runs],
            }
            for m in measurements
        ],
    }
