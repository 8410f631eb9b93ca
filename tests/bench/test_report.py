"""fleet bench's figures: medians over rounds, every ratio, the headline, the table and the JSON."""

from __future__ import annotations

import json

import pytest
from rich.console import Console

from fleet.bench import report
from fleet.bench.report import Measurement, RunFigures


def figures(rps: float, *, p99: float = 10.0, non_2xx: int = 0, errors: int = 0, load1: float = 1.0) -> RunFigures:
    return RunFigures(
        rps=rps, p50_ms=p99 / 4, p95_ms=p99 / 2, p99_ms=p99, sent=int(rps * 10), ok=int(rps * 10) - non_2xx,
        non_2xx=non_2xx, errors=errors, duration_s=10.0, load1=load1,
    )  # fmt: skip


def run_of(rps: dict[tuple[str, str, str], list[float]]) -> list[Measurement]:
    return [
        Measurement(deployment, endpoint, route, f"https://10.231.0.140/{endpoint}", tuple(figures(v) for v in values))
        for (deployment, endpoint, route), values in rps.items()
    ]


FULL = {
    **{("naive", e, r): [v] for (e, r), v in {
        ("health", "proxied"): 1000, ("health", "direct"): 2000,
        ("item", "proxied"): 800, ("item", "direct"): 1000,
        ("list", "proxied"): 500, ("list", "direct"): 400,
        ("static", "ceiling"): 10000,
    }.items()},
    **{("tuned", e, r): [v] for (e, r), v in {
        ("health", "proxied"): 1500, ("health", "direct"): 3000,
        ("item", "proxied"): 1600, ("item", "direct"): 2000,
        ("list", "proxied"): 1000, ("list", "direct"): 1000,
        ("static", "ceiling"): 9000,
    }.items()},
}  # fmt: skip


def test_medians_over_rounds_and_summed_failures():
    m = Measurement(
        "tuned",
        "health",
        "proxied",
        "u",
        (figures(100, p99=30), figures(300, p99=10, non_2xx=2), figures(200, errors=1)),
    )
    assert m.rps == 200
    assert m.p99_ms == 10
    assert m.failures == 3
    assert m.spread == pytest.approx((300 - 100) / 200)
    assert Measurement("tuned", "health", "proxied", "u", (figures(100),)).spread == 0


def test_every_ratio_of_a_full_run():
    r = report.ratios(run_of(FULL))
    assert r["tuned/naive"]["proxied"] == {"health": 1.5, "item": 2.0, "list": 2.0}
    assert r["tuned/naive"]["direct"] == {"health": 1.5, "item": 2.0, "list": 2.5}
    assert r["tuned/naive"]["ceiling drift"] == 0.9
    assert r["tuned/naive"]["ceiling-normalised"]["proxied"] == {"health": 1.667, "item": 2.222, "list": 2.222}
    assert r["proxied/direct"]["naive"] == {"health": 0.5, "item": 0.8, "list": 1.25}
    assert r["proxied/direct"]["tuned"] == {"health": 0.5, "item": 0.8, "list": 1.0}
    assert r["app/ceiling"]["naive"] == {"health": 0.1, "item": 0.08, "list": 0.05}
    assert r["app/ceiling"]["tuned"]["health"] == pytest.approx(0.167)


def test_one_deployment_has_no_tuned_over_naive():
    naive_only = {key: value for key, value in FULL.items() if key[0] == "naive"}
    r = report.ratios(run_of(naive_only))
    assert r["tuned/naive"] == {}
    assert set(r["proxied/direct"]) == {"naive"}
    lines = report.headline(r)
    assert not any(line.startswith("tuned/naive") for line in lines)
    assert any(line.startswith("proxied/direct (naive)") for line in lines)


def test_a_missing_or_zero_measurement_gives_no_ratio():
    partial = {key: value for key, value in FULL.items() if key != ("tuned", "list", "direct")}
    partial[("naive", "static", "ceiling")] = [0.0]
    r = report.ratios(run_of(partial))
    assert r["tuned/naive"]["direct"]["list"] is None
    assert r["proxied/direct"]["tuned"]["list"] is None
    assert r["app/ceiling"]["naive"] == {"health": None, "item": None, "list": None}
    assert "list -" in report.headline(r)[1]


def test_headline_lines():
    lines = report.headline(report.ratios(run_of(FULL)))
    assert lines[0] == "tuned/naive through the load balancer: health 1.50  item 2.00  list 2.00"
    assert lines[1] == "tuned/naive direct to the app host:    health 1.50  item 2.00  list 2.50"
    assert lines[2].endswith("health 1.67  item 2.22  list 2.22") and "ceiling drift" in lines[2]
    assert "proxied/direct (naive):" in lines[3] and lines[3].endswith("list 1.25")
    assert lines[-1].startswith("ceiling drift tuned/naive") and lines[-1].endswith("0.90")


def test_load_summary_and_document_are_json():
    measurements = [
        Measurement("naive", "health", "proxied", "u", (figures(1, load1=2.5), figures(1, load1=6.0))),
        Measurement("naive", "health", "direct", "u", (figures(1, load1=4.0),)),
    ]
    assert report.load_summary(measurements, 2) == {"cpus": 2, "load1_min": 2.5, "load1_median": 4.0, "load1_max": 6.0}
    assert report.load_summary([], 2)["load1_max"] is None
    doc = report.document(run_of(FULL), settings={"rounds": 1}, stack={"proxied": "x"}, deployments=[], cpus=2)
    again = json.loads(json.dumps(doc))
    assert again["kind"] == "fleet-bench-stack"
    assert len(again["measurements"]) == 14
    assert again["measurements"][0]["runs"][0]["rps"] == 1000
    assert again["ratios"]["tuned/naive"]["proxied"]["item"] == 2.0


def test_table_has_a_row_per_measurement():
    console = Console(width=200, record=True)
    console.print(report.table(run_of(FULL), 1))
    text = console.export_text()
    assert "medians of 1 round" in text and "rounds" not in text
    assert text.count("naive") == 7 and text.count("tuned") == 7
    assert "item read (cache hit)" in text and "nginx static" in text
