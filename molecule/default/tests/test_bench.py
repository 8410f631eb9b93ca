"""`fleet bench`, a short run on the converged scenario (issue 11): deploy, measure, restore.

The harness runs as users run it (a subprocess, -i the scenario's inventory) with the bench
settings as extra variables (inventories/bench/group_vars/all/bench.yml: per-client limits
lifted, nginx's static answer, the control node admitted to the app port) and only the
naive baseline, to stay short: it deploys the baseline through site.yml, measures every
target for a few seconds, deletes the items it created and deploys the inventory as it is
again. The test checks what the report says against the hosts: the baseline really ran
(one worker, no upstream keepalive, stock PostgreSQL and Redis memory settings), every
request succeeded, the ratios are there, and afterwards the host is the scenario's again —
the converge's settings, the app port closed to the control node, no static answer. The
full tuned-versus-naive run is for docs/performance.md (`fleet bench` on inventories/bench).
"""

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import host_address

FLEET = Path(sys.executable).parent / "fleet"
REPO = Path(__file__).resolve().parents[3]
BENCH_SETTINGS = REPO / "inventories" / "bench" / "group_vars" / "all" / "bench.yml"
ENV_FILE = "/etc/fastapi-fleet/app.env"
SITE_FILE = "/etc/nginx/sites-available/fastapi-fleet.conf"
PG_CONF = "/etc/postgresql/15/main/conf.d/60-fastapi-fleet.conf"
# Two deploys of site.yml and seven short wrk runs, on a CPU shared with other sessions.
TIMEOUT = 1800

testinfra_hosts = ["loadbalancers"]


def _workers(host) -> str:
    line = next(line for line in host.file(ENV_FILE).content_string.splitlines() if line.startswith("APP_WORKERS="))
    return line.split("=", 1)[1].strip("'")


def _app_port_answers(address: str, port: int = 8000) -> bool:
    try:
        with socket.create_connection((address, port), timeout=3):
            return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def bench_run(host, inventory, tmp_path_factory):
    before = {
        "workers": _workers(host),
        "site": host.file(SITE_FILE).content_string,
        "pg": host.file(PG_CONF).content_string,
        "redis": host.file("/etc/redis/redis.conf").content_string,
    }
    assert not _app_port_answers(host_address(host)), "the app port must be closed to the control node before"
    output = tmp_path_factory.mktemp("bench") / "stack.json"
    command = [
        str(FLEET), "bench", "-i", inventory, "-e", f"@{BENCH_SETTINGS}", "--deployments", "naive",
        "--duration", "2", "--warmup", "1", "--rounds", "1", "--connections", "16", "--items", "20",
        "-o", str(output),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT, cwd=REPO, check=False)
    print(done.stdout[-6000:])
    print(done.stderr[-3000:], file=sys.stderr)
    return done, json.loads(output.read_text()), before


def test_the_run_succeeds_and_reports_every_target(bench_run):
    done, document, _ = bench_run
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stdout + done.stderr
    assert document["error"] is None
    routes = {(m["endpoint"], m["route"]) for m in document["measurements"]}
    assert routes == {(e, r) for e in ("health", "item", "list") for r in ("proxied", "direct")} | {
        ("static", "ceiling")
    }
    for measurement in document["measurements"]:
        assert measurement["failures"] == 0, measurement
        assert measurement["rps"] > 0, measurement
        assert measurement["runs"][0]["ok"] > 0
    item = next(m for m in document["measurements"] if m["endpoint"] == "item" and m["route"] == "direct")
    assert item["cache_hit_ratio"] is not None and item["cache_hit_ratio"] > 0.95
    ratios = document["ratios"]
    for family in ("proxied/direct", "app/ceiling"):
        assert all(value > 0 for value in ratios[family]["naive"].values()), ratios
    assert ratios["tuned/naive"] == {}
    assert "headline" in done.stdout and "proxied/direct (naive)" in done.stdout
    assert document["machine"]["cpus"] >= 1 and document["machine"]["load1_max"] is not None


def test_the_naive_baseline_really_ran(bench_run):
    _, document, _ = bench_run
    (naive,) = document["deployments"]
    assert naive["name"] == "naive"
    deployed = naive["deployed"]
    assert deployed["app workers"] == "1"
    assert deployed["nginx upstream keepalive"] == "off"
    assert deployed["postgresql shared_buffers"] == "128MB"  # PostgreSQL's own default
    assert deployed["redis maxmemory"] == "none (stock)"


def test_the_host_is_the_scenarios_again(host, bench_run):
    _, document, before = bench_run
    assert document["restored"]["ok"], document["restored"]
    assert _workers(host) == before["workers"]
    assert host.file(SITE_FILE).content_string == before["site"]
    assert host.file(PG_CONF).content_string == before["pg"]
    assert host.file("/etc/redis/redis.conf").content_string == before["redis"]
    assert not _app_port_answers(host_address(host)), "the bench's firewall rule must be gone"
    shared_buffers = host.check_output("runuser -u postgres -- psql -XAtc 'SHOW shared_buffers'")
    assert shared_buffers != "128MB"
