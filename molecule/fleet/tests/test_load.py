"""Sustained load through lb1 while every worker recycles, then with an app host failing mid-run.

Each run sends `/health` through the load balancer for SECONDS from the control node
(fleet.load: wrk in another process) while the scenario's low `app_max_requests`
(inventory/group_vars/all/scenario.yml) recycles every worker several times (counted from
Gunicorn's log on the app hosts). The bar, for every run: zero non-2xx responses and zero
socket errors. With app1's service stopped mid-run the p99 stays within a second of the
healthy run's; with app1's network cut mid-run (its link down: connects time out) no request
fails, but the p99 bound is a known gap (marked xfail, issue 7 open).
"""

import json
import os
import subprocess
import time

import pytest
from conftest import address

from fleet.lab import network
from fleet.load import start_load

testinfra_hosts = ["lb1"]

SECONDS = max(60, int(os.environ.get("FLEET_LOAD_SECONDS", "60")))
CONNECTIONS = int(os.environ.get("FLEET_LOAD_CONNECTIONS", "128"))
# A response slower than this counts as a socket error. Healthy runs: latency varies on the
# lab's shared cores, failures must not. With app1 cut off, a request nginx had already sent
# to it waits for its TCP retransmission once the link is back (or proxy_read_timeout), so
# those few runs allow longer; the p99 bar below still holds them to the healthy figure.
CLIENT_TIMEOUT = 10.0
FAILURE_CLIENT_TIMEOUT = 45.0
APP_LOG = "/var/log/fastapi-fleet/app.log"
APP_UNIT = "fastapi-fleet.service"
# Stopped with its socket: alone, the socket would start the service on nginx's next connection.
APP_UNITS = f"fastapi-fleet.socket {APP_UNIT}"
APP_HOSTS = ("app1", "app2")
RECYCLES_PER_WORKER = 3


def _log_lines(app) -> int:
    return int(app.check_output(f"wc -l < {APP_LOG}"))


def _recycles_since(app, line: int) -> int:
    text = app.check_output(f'tail -n +{line + 1} {APP_LOG} | grep -v \'"message":"request"\' || true')
    messages = [str(json.loads(entry)["message"]) for entry in text.splitlines() if entry.strip()]
    return sum(message.startswith("Maximum request limit") for message in messages)


def _workers(app) -> int:
    main = app.check_output(f"systemctl show --property MainPID --value {APP_UNIT}").strip()
    return int(app.check_output(f"pgrep -c -P {main}"))


def _url(fleet) -> str:
    return f"https://{address(fleet['lb1'])}/health"


def _wait_ready(app_host) -> None:
    ready = app_host.run(
        "for i in $(seq 60); do curl -fsS -o /dev/null http://127.0.0.1:8000/ready && exit 0; sleep 1; done; exit 1"
    )
    assert ready.rc == 0, "the app host did not come back ready"


@pytest.fixture(scope="module")
def healthy(fleet):
    marks = {name: _log_lines(fleet[name]) for name in APP_HOSTS}
    with start_load(_url(fleet), duration=SECONDS, connections=CONNECTIONS, timeout=CLIENT_TIMEOUT) as load:
        pass  # recycles are the only disturbance
    result = load.result()
    recycles = {name: _recycles_since(fleet[name], marks[name]) for name in APP_HOSTS}
    workers = {name: _workers(fleet[name]) for name in APP_HOSTS}
    print(f"\nhealthy: {result.line()}")
    for name in APP_HOSTS:
        print(f"{name}: {recycles[name]} recycles, {workers[name]} workers")
    return result, recycles, workers


def test_sustained_load_with_recycling_workers_fails_no_request(healthy):
    result, recycles, workers = healthy
    assert result.duration_s >= SECONDS
    assert result.responses > 0
    assert result.non_2xx == 0, result.line()
    assert result.errors.total == 0, result.line()
    for name in APP_HOSTS:
        assert recycles[name] >= RECYCLES_PER_WORKER * workers[name], f"{name}: workers did not recycle often enough"


def test_app_service_stopped_mid_run_fails_no_request(fleet, healthy):
    app1 = fleet["app1"]
    try:
        with start_load(_url(fleet), duration=SECONDS, connections=CONNECTIONS, timeout=FAILURE_CLIENT_TIMEOUT) as load:
            time.sleep(SECONDS / 3)
            app1.run_expect([0], f"systemctl stop {APP_UNITS}")
            time.sleep(SECONDS / 3)
            app1.run_expect([0], f"systemctl start {APP_UNITS}")
        result = load.result()
    finally:
        app1.run(f"systemctl start {APP_UNITS}")
        _wait_ready(app1)
    print(f"\napp1 stopped mid-run: {result.line()}")
    assert result.non_2xx == 0, result.line()
    assert result.errors.total == 0, result.line()
    assert result.p99_ms <= healthy[0].p99_ms + 1000, (result.line(), healthy[0].line())


def _set_link(machine: str, state: str) -> None:
    subprocess.run(["ip", "link", "set", network.veth_name(machine), state], check=True)


@pytest.fixture(scope="module")
def cut_off(fleet, healthy):
    try:
        with start_load(_url(fleet), duration=SECONDS, connections=CONNECTIONS, timeout=FAILURE_CLIENT_TIMEOUT) as load:
            time.sleep(SECONDS / 3)
            _set_link("app1", "down")
            time.sleep(SECONDS / 3)
            _set_link("app1", "up")
        result = load.result()
    finally:
        _set_link("app1", "up")
        _wait_ready(fleet["app1"])
    print(f"\napp1 cut off mid-run: {result.line()}")
    return result


def test_app_host_cut_off_mid_run_fails_no_request(cut_off):
    assert cut_off.non_2xx == 0, cut_off.line()
    assert cut_off.errors.total == 0, cut_off.line()


@pytest.mark.xfail(
    reason="known gap, issue 7 stays open: requests nginx already sent to the cut-off host on kept-alive "
    "connections wait for the link to come back (or proxy_read_timeout) before they are retried; "
    "p99 was 19 s against 0.2 s healthy",
    strict=False,
)
def test_app_host_cut_off_mid_run_keeps_p99_within_a_second(cut_off, healthy):
    assert cut_off.p99_ms <= healthy[0].p99_ms + 1000, (cut_off.line(), healthy[0].line())
