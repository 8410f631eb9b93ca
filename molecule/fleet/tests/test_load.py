"""Sustained load through lb1 while every worker recycles, then with an app host failing mid-run.

Each run sends `/health` through the load balancer for SECONDS from the control node
(fleet.load: wrk in another process) while the scenario's low `app_max_requests`
(inventory/group_vars/all/scenario.yml) recycles every worker several times (counted from
Gunicorn's log on the app hosts). The bar, for every run: zero non-2xx responses and zero
socket errors. With app1's service stopped mid-run, and with app1's network cut mid-run (its
link down: connects time out, requests in flight get no answer), the p99 also stays within a
second of the healthy run's: lb1's upstream watcher aborts its connections to the vanished
host, so nginx retries their requests on app2 at once.
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
WATCH_UNIT = "fastapi-fleet-upstream-watch.service"


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
    lb1 = fleet["lb1"]
    since = lb1.check_output("date +%s")
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
    watch = lb1.check_output(f"journalctl --unit {WATCH_UNIT} --since @{since} --output cat --no-pager")
    print(f"\napp1 cut off mid-run: {result.line()}\nlb1's upstream watch:\n{watch}")
    return result, watch


def test_app_host_cut_off_mid_run_fails_no_request(cut_off):
    result, _ = cut_off
    assert result.non_2xx == 0, result.line()
    assert result.errors.total == 0, result.line()


def test_app_host_cut_off_mid_run_keeps_p99_within_a_second(fleet, cut_off, healthy):
    result, watch = cut_off
    app1 = f"{address(fleet['app1'])}:8000"
    # The watcher saw app1 vanish and come back, and aborted lb1's connections to it.
    assert f"{app1} gone" in watch and f"{app1} answers again" in watch, watch
    assert result.p99_ms <= healthy[0].p99_ms + 1000, (result.line(), healthy[0].line())
