"""``fleet bench`` output parsing (the benchmark itself is run by hand, not in CI)."""

from __future__ import annotations

import pytest

from fleet.bench import cli as bench

# wrk's output format; it pads values in seconds with a trailing space (\x20).
WRK_OUTPUT = """\
Running 10s test @ http://127.0.0.1:8000/api/v1/items/1
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    10.71ms    5.39ms 108.00ms   87.52%
    Req/Sec     3.03k   386.54     3.76k    72.50%
  Latency Distribution
     50%  850.00us
     75%   11.93ms
     90%   14.87ms
     99%    1.02s\x20
  60349 requests in 10.01s, 12.20MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 4
Requests/sec:   6030.62
Transfer/sec:      1.22MB
"""


def test_parse_wrk() -> None:
    result = bench.parse_wrk("item", "/api/v1/items/1", WRK_OUTPUT)
    assert result.requests_per_second == pytest.approx(6030.62)
    assert result.requests == 60349
    assert result.p50_ms == pytest.approx(0.85)
    assert result.p90_ms == pytest.approx(14.87)
    assert result.p99_ms == pytest.approx(1020.0)
    assert result.errors == 7


def test_parse_wrk_rejects_garbage() -> None:
    with pytest.raises(ValueError, match="unexpected wrk output"):
        bench.parse_wrk("x", "/", "wrk: connection refused")
