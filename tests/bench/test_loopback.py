"""fleet bench loopback: its figures come from fleet.load's counts; its ratios."""

from __future__ import annotations

import pytest

from fleet.bench import loopback
from fleet.load import LoadResult, SocketErrors


def load(rps: float, *, non_2xx: int = 0, errors: SocketErrors | None = None) -> LoadResult:
    responses = int(rps * 10)
    statuses = {200: responses - non_2xx, **({502: non_2xx} if non_2xx else {})}
    return LoadResult(
        sent=responses, responses=responses, statuses=statuses, errors=errors or SocketErrors(),
        duration_s=10.0, p50_ms=1.0, p99_ms=9.0, max_ms=20.0, p95_ms=5.0,
    )  # fmt: skip


def test_result_of_a_load_run_counts_failures():
    result = loopback.Result.of("health", "/health", load(1000, non_2xx=4, errors=SocketErrors(read=2, timeout=1)))
    assert result.requests_per_second == 1000
    assert result.requests == 10000
    assert (result.p50_ms, result.p95_ms, result.p99_ms) == (1.0, 5.0, 9.0)
    assert result.errors == 7


def test_ratios():
    results = [
        loopback.Result.of("health", "/health", load(4000)),
        loopback.Result.of("item (cache hit)", "/api/v1/items/1", load(3000)),
        loopback.Result.of("item (database read)", "/api/v1/items/1", load(1500)),
        loopback.Result.of("list (database)", "/api/v1/items", load(1000)),
    ]
    assert loopback.ratios(results) == {
        "cache hit / database read": 2.0,
        "cache hit / health": 0.75,
        "list / health": pytest.approx(0.25),
    }
