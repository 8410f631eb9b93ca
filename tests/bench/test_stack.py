"""fleet bench (the stack): the checks before anything runs, the targets, and the measuring loop.

The measuring loop runs for real: wrk (fleet.load) against a small HTTP server on loopback
standing in for the load balancer and the app host.
"""

from __future__ import annotations

import http.server
import json
import threading
import urllib.request
from collections.abc import Iterator
from dataclasses import replace

import pytest

from fleet.bench import stack
from fleet.bench.stack import Options, Seeded, Stack
from fleet.errors import FleetError
from fleet.ops.inventory import Host, InventorySource
from fleet.ops.remote import Result

HOSTS = [
    Host("lb1", ("loadbalancers",), {"ansible_host": "10.231.0.140", "nginx_static_path": "/nginx-static"}),
    Host("app1", ("app",), {"ansible_host": "10.231.0.141"}),
    Host("app2", ("app",), {"ansible_host": "10.231.0.143", "app_port": 8080}),
    Host("db1", ("postgres", "redis"), {"ansible_host": "10.231.0.142"}),
]
OPTIONS = Options(source=InventorySource("inventories/bench"))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"duration": 0}, "--duration must be 1..120, not 0"),
        ({"duration": 121}, "--duration must be 1..120"),
        ({"rounds": 0}, "--rounds must be 1..10"),
        ({"items": 5}, "--items must be 20..1000"),
        ({"threads": 4, "connections": 2}, "--connections must be at least --threads"),
        ({"timeout": 0.0}, "--timeout must be above 0"),
        ({"deployments": ("naive", "fast")}, "--deployments takes naive, tuned or both"),
        ({"deployments": ("tuned", "tuned")}, "--deployments takes naive, tuned or both"),
        ({"deployments": ()}, "--deployments takes naive, tuned or both"),
        ({"extra_vars": ("@/no/such/file.yml",)}, "extra variables file /no/such/file.yml does not exist"),
    ],
)
def test_bad_options_are_refused(change, message):
    with pytest.raises(FleetError, match=message.replace("(", r"\(")):
        stack.check_options(replace(OPTIONS, **change))


def test_defaults_pass():
    stack.check_options(OPTIONS)


def test_extra_settings_merge_files_and_json(tmp_path):
    first = tmp_path / "a.yml"
    first.write_text("app_workers: 1\nnginx_static_path: /a\n")
    assert stack.extra_settings([f"@{first}", '{"nginx_static_path": "/b"}']) == {
        "app_workers": 1,
        "nginx_static_path": "/b",
    }
    with pytest.raises(FleetError, match="not a mapping"):
        stack.extra_settings(["[1, 2]"])


def test_the_bench_settings_and_naive_baseline_files():
    settings = stack.extra_settings([f"@{stack.BENCH_SETTINGS}"])
    assert settings["nginx_static_path"] == "/nginx-static"
    assert any("10.231.0.1" in rule for rule in settings["common_firewall_extra_rules"])
    naive = stack.extra_settings([f"@{stack.NAIVE_VARS}"])
    assert naive == {
        "app_workers": 1,
        "nginx_upstream_keepalive": 0,
        "postgresql_tuning_enabled": False,
        "redis_tuning_enabled": False,
        "redis_persistence": "rdb",
    }


def test_resolve_stack_picks_the_first_hosts_and_their_ports():
    s = stack.resolve_stack(OPTIONS, HOSTS)
    assert (s.load_balancer.name, s.app.name) == ("lb1", "app1")
    assert s.lb_url == "https://10.231.0.140"
    assert s.app_url == "http://10.231.0.141:8000"
    assert s.static_path == "/nginx-static"
    assert s.app_hosts == ("app1", "app2")
    chosen = stack.resolve_stack(replace(OPTIONS, app_host="app2"), HOSTS)
    assert chosen.app_url == "http://10.231.0.143:8080"


def test_extra_vars_win_over_the_inventory():
    options = replace(OPTIONS, extra_vars=('{"nginx_static_path": "/other", "nginx_https_port": 8443}',))
    s = stack.resolve_stack(options, HOSTS)
    assert s.static_path == "/other"
    assert s.lb_url == "https://10.231.0.140:8443"


@pytest.mark.parametrize(
    ("hosts", "options", "message"),
    [
        ([h for h in HOSTS if h.name != "lb1"], OPTIONS, "no host in the loadbalancers group"),
        ([h for h in HOSTS if h.name != "db1"], OPTIONS, "no host in the postgres group"),
        (HOSTS, replace(OPTIONS, app_host="db1"), "--app-host db1: not a host of the app group"),
        (
            [Host("lb1", ("loadbalancers",), {"ansible_host": "10.231.0.140"}), *HOSTS[1:]],
            OPTIONS,
            "nginx_static_path is empty",
        ),
        (
            [Host("lb1", ("loadbalancers",), {"ansible_host": "192.0.2.7", "nginx_static_path": "/s"}), *HOSTS[1:]],
            OPTIONS,
            "outside the allowed networks",
        ),
    ],
)
def test_resolve_stack_refuses(hosts, options, message):
    with pytest.raises(FleetError, match=message):
        stack.resolve_stack(options, hosts)


def test_targets_of_a_round():
    s = stack.resolve_stack(OPTIONS, HOSTS)
    seeded = Seeded([41, 42, 60])
    found = [(t.endpoint, t.route, t.url) for t in stack.targets(s, seeded)]
    assert found == [
        ("health", "proxied", "https://10.231.0.140/health"),
        ("health", "direct", "http://10.231.0.141:8000/health"),
        ("item", "proxied", "https://10.231.0.140/api/v1/items/41"),
        ("item", "direct", "http://10.231.0.141:8000/api/v1/items/41"),
        ("list", "proxied", "https://10.231.0.140/api/v1/items?limit=20&after=40"),
        ("list", "direct", "http://10.231.0.141:8000/api/v1/items?limit=20&after=40"),
        ("static", "ceiling", "https://10.231.0.140/nginx-static"),
    ]


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    hits = 0

    def do_GET(self) -> None:
        if self.path == "/metrics":
            body = (
                f'# TYPE app_cache_requests_total counter\napp_cache_requests_total{{result="hit"}} {_Handler.hits}\n'
            )
        else:
            if self.path.startswith("/api/v1/items/"):
                _Handler.hits += 1
            body = json.dumps({"status": "ok"})
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def metrics_over_ssh(monkeypatch, server) -> list[tuple[str, str]]:
    """The harness reads /metrics on the app host over SSH: here the stand-in's, and the calls recorded."""
    calls: list[tuple[str, str]] = []

    def run_one(host: Host, command: str, **_: object) -> Result:
        calls.append((host.name, command))
        with urllib.request.urlopen(server + "/metrics", timeout=5) as response:
            return Result(host.name, 0, response.read().decode(), "")

    monkeypatch.setattr(stack, "run_one", run_one)
    return calls


def test_measure_deployment_on_loopback(server, metrics_over_ssh):
    s = Stack(HOSTS[0], HOSTS[1], server, server, "/static", ("app1",))
    options = replace(OPTIONS, duration=1, warmup=0, rounds=2, connections=4, threads=1)
    notes: list[str] = []
    measurements = stack.measure_deployment("tuned", s, Seeded([7]), options, notes.append)
    assert [(m.endpoint, m.route) for m in measurements] == [
        ("health", "proxied"), ("health", "direct"), ("item", "proxied"), ("item", "direct"),
        ("list", "proxied"), ("list", "direct"), ("static", "ceiling"),
    ]  # fmt: skip
    assert notes == ["tuned: round 1 of 2, 7 targets x 1s", "tuned: round 2 of 2, 7 targets x 1s"]
    for m in measurements:
        assert len(m.runs) == 2
        assert m.rps > 0 and m.failures == 0
        assert 0 < m.p50_ms <= m.p95_ms <= m.p99_ms
    item = next(m for m in measurements if m.endpoint == "item" and m.route == "direct")
    assert item.cache_hit_ratio == 1.0  # every read counted as a hit by the stand-in's /metrics
    assert next(m for m in measurements if m.endpoint == "health").cache_hit_ratio is None
    # Two reads per item run, on the app host from loopback (the app's /metrics refuses the control node).
    assert metrics_over_ssh[0] == (HOSTS[1].name, "curl -sf --max-time 5 http://127.0.0.1:8000/metrics")
    assert len(metrics_over_ssh) == 2 * 2 * 2


def test_verbose_notes_every_run(server):
    s = Stack(HOSTS[0], HOSTS[1], server, server, "/static", ("app1",))
    options = replace(OPTIONS, duration=1, warmup=0, rounds=1, connections=2, threads=1, verbose=1)
    notes: list[str] = []
    stack.measure_deployment("naive", s, Seeded([7]), options, notes.append)
    runs = [n for n in notes if n.startswith("  ")]
    assert len(runs) == 7
    assert (
        runs[0].startswith("  health proxied: ") and " req/s, p99 " in runs[0] and runs[0].endswith(tuple("0123456789"))
    )
