"""The fleet: tiers on their own machines find each other, fail over, and are closed to everyone else.

Run by molecule's testinfra verifier over the scenario's machines; each test reaches the
machines it needs by name (conftest.py), from the control node and from the machines.
"""

import concurrent.futures
import json
import math
import shlex
import time
import uuid
from pathlib import Path

import pytest
from conftest import CONTROL, MACHINES, address, request, tcp_matrix

testinfra_hosts = ["lb1"]

APP_LOG = "/var/log/fastapi-fleet/app.log"
APP_UNIT = "fastapi-fleet.service"
# Stopped with its socket: alone, the socket would start the service on nginx's next connection.
APP_UNITS = f"fastapi-fleet.socket {APP_UNIT}"
RATE = 15  # requests per second in the failover test
LAB_SECRETS = Path("/var/lib/fastapi-fleet-lab/secrets")


def _request_ids_served(app_host, ids: set[str]) -> set[str]:
    lines = app_host.check_output(f"cat {APP_LOG}").splitlines()
    seen = set()
    for line in lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("request_id") in ids:
            seen.add(entry["request_id"])
    return seen


def test_requests_through_lb1_are_answered_by_both_app_hosts(fleet):
    lb = address(fleet["lb1"])
    ids = {f"fleet-spread-{uuid.uuid4().hex}" for _ in range(40)}
    for request_id in ids:
        status, _ = request(lb, "GET", "/api/v1/items?limit=1", request_id=request_id)
        assert status == 200
    served = {name: _request_ids_served(fleet[name], ids) for name in ("app1", "app2")}
    assert served["app1"], "app1 answered none of 40 requests"
    assert served["app2"], "app2 answered none of 40 requests"
    assert served["app1"] | served["app2"] == ids
    assert not served["app1"] & served["app2"], "a request was answered twice"


@pytest.fixture
def app1_stopped(fleet):
    app1 = fleet["app1"]
    app1.run_expect([0], f"systemctl stop {APP_UNITS}")
    yield app1
    app1.run_expect([0], f"systemctl start {APP_UNITS}")
    ready = app1.run(
        "for i in $(seq 60); do curl -fsS -o /dev/null http://127.0.0.1:8000/ready && exit 0; sleep 1; done; exit 1"
    )
    assert ready.rc == 0, "app1 did not come back ready"


def test_with_app1_stopped_every_request_succeeds_through_lb1(fleet, app1_stopped):
    lb = address(fleet["lb1"])
    marker = f"failover-{uuid.uuid4().hex[:12]}"

    start = time.monotonic()

    def paced(i: int) -> None:
        # Below nginx's per-client rate limit (20 r/s by default): a 429 is not what is tested.
        time.sleep(max(0.0, start + i / RATE - time.monotonic()))

    def post(i: int):
        paced(i)
        return request(lb, "POST", "/api/v1/items", body={"name": f"{marker}-{i}", "description": "failover"})

    def get(i: int):
        paced(50 + i)
        return request(lb, "GET", "/api/v1/items?limit=5" if i % 2 else f"/api/v1/items?limit=1&after={i}")

    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        post_futures = [pool.submit(post, i) for i in range(50)]
        get_futures = [pool.submit(get, i) for i in range(200)]
        posts = [future.result() for future in post_futures]
        gets = [future.result() for future in get_futures]
    assert [status for status, _ in posts] == [201] * 50
    assert [status for status, _ in gets] == [200] * 200
    # Every POST created exactly one row: none lost, none duplicated by a retry.
    created = {body["name"] for _, body in posts}
    assert created == {f"{marker}-{i}" for i in range(50)}
    query = "SELECT count(*) FROM items WHERE name LIKE '" + marker + "-%'"
    count = fleet["db1"].check_output(f'runuser -u postgres -- psql -d fleet -tAc "{query}"')
    assert count.strip() == "50"


def test_data_tiers_accept_only_the_app_hosts(fleet):
    probes = [(source, "db1", 5432) for source in (*MACHINES, CONTROL) if source != "db1"]
    probes += [(source, "cache1", 6379) for source in (*MACHINES, CONTROL) if source != "cache1"]
    results = tcp_matrix(fleet, probes)
    allowed = {source for source, _, _ in probes if source in ("app1", "app2")}
    for (source, target, port), is_open in results.items():
        assert is_open == (source in allowed), f"{source} -> {target}:{port} open={is_open}"


def test_app_port_answers_only_the_load_balancer_and_the_monitoring_host(fleet):
    # mon1 scrapes the app's /metrics and probes /ready on the app port.
    sources = (*MACHINES, CONTROL)
    probes = [(source, target, 8000) for target in ("app1", "app2") for source in sources if source != target]
    results = tcp_matrix(fleet, probes)
    for (source, target, port), is_open in results.items():
        assert is_open == (source in ("lb1", "mon1")), f"{source} -> {target}:{port} open={is_open}"


def test_ssh_only_from_the_admin_network(fleet):
    probes = [(source, target, 22) for target in MACHINES for source in (CONTROL, "lb1", "app1") if source != target]
    results = tcp_matrix(fleet, probes)
    for (source, target, port), is_open in results.items():
        assert is_open == (source == CONTROL), f"{source} -> {target}:{port} open={is_open}"


def test_https_answers_everyone(fleet):
    results = tcp_matrix(fleet, [(source, "lb1", 443) for source in (CONTROL, "app1", "db1", "cache1")])
    assert all(results.values()), results


def _env(app_host) -> dict[str, str]:
    text = app_host.file("/etc/fastapi-fleet/app.env").content_string
    return {key: value.strip("'") for key, value in (line.split("=", 1) for line in text.splitlines() if "=" in line)}


def test_max_connections_is_the_app_hosts_demand_with_headroom(fleet):
    # Demand: each app host's Gunicorn workers x its pool maximum, plus one for the migration
    # run; then 25 % headroom, 3 superuser-reserved and 10 admin connections (role defaults).
    demand = 0
    for name in ("app1", "app2"):
        env = _env(fleet[name])
        workers = int(fleet[name].check_output(f"pgrep -c -P $(systemctl show -P MainPID {APP_UNIT})"))
        assert workers == int(env["APP_WORKERS"])
        demand += workers * int(env["APP_DB_POOL_MAX_SIZE"]) + 1
    expected = math.ceil(demand * 125 / 100) + 3 + 10
    shown = fleet["db1"].check_output("runuser -u postgres -- psql -tAc 'SHOW max_connections'")
    assert int(shown) == expected


def test_redis_maxmemory_is_the_size_set_for_the_cache_host(fleet):
    # The scenario sizes Redis for a small machine (scenario.yml); the computed default (a
    # share of the host's RAM) is proved by the default scenario's test_redis.py.
    cache = fleet["cache1"]
    expected = int(cache.ansible.get_variables()["redis_maxmemory_mb"]) * 1024 * 1024
    # The lab's generated admin password (inventories/lab/group_vars/all/secrets.yml).
    password = (LAB_SECRETS / "redis_admin_password").read_text().split()[0]
    shown = cache.check_output(
        f"REDISCLI_AUTH={shlex.quote(password)} redis-cli --no-auth-warning -s /run/redis/redis-server.sock"
        " --user admin CONFIG GET maxmemory"
    ).split()
    assert shown == ["maxmemory", str(expected)]
