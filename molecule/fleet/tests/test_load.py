"""Sustained load through lb1 with every worker recycling, then with an app host failing mid-run.

Each run sends `/health` through the load balancer for DURATION seconds from the control
node (fleet.load: wrk in another process) while the scenario's low `app_max_requests`
(inventory/group_vars/all/scenario.yml) recycles every worker several times. The bar, for
every run: zero non-2xx responses and zero socket errors. With app1's service stopped
mid-run, and with app1's network cut mid-run (its link down: connects time out), the
p99 stays within a second of the healthy run's.
"""

import subprocess
import time

import pytest
from conftest import address

from fleet.lab import network
from fleet.load import start_load

testinfra_hosts = ["lb1"]

DURATION = 60
CONNECTIONS = 64
APP_UNIT = "fastapi-fleet.service"
APP_HOSTS = ("app1", "app2")


def _booted(app_host) -> int:
    """Workers Gunicorn has booted so far (one log line each, in the app's JSON log)."""
    return int(app_host.check_output("grep -c 'Booting worker' /var/log/fastapi-fleet/app.log || true") or 0)


class WorkerWatch:
    """Counts the workers booted on every app host during a run: each one after the first set is a recycle."""

    def __init__(self, fleet: dict) -> None:
        self.fleet = fleet
        self.workers = {
            name: int(fleet[name].check_output(f"pgrep -c -P $(systemctl show -P MainPID {APP_UNIT})"))
            for name in APP_HOSTS
        }
        self.before: dict[str, int] = {}
        self.after: dict[str, int] = {}

    def __enter__(self):
        self.before = {name: _booted(self.fleet[name]) for name in APP_HOSTS}
        return self

    def __exit__(self, *exc) -> None:
        self.after = {name: _booted(self.fleet[name]) for name in APP_HOSTS}

    def recycles_per_worker(self, name: str) -> float:
        """Workers booted during the run, per worker slot of the host."""
        return (self.after[name] - self.before[name]) / max(1, self.workers[name])


def _url(fleet) -> str:
    return f"https://{address(fleet['lb1'])}/health"


def _wait_ready(app_host) -> None:
    ready = app_host.run(
        "for i in $(seq 60); do curl -fsS -o /dev/null http://127.0.0.1:8000/ready && exit 0; sleep 1; done; exit 1"
    )
    assert ready.rc == 0, "the app host did not come back ready"


@pytest.fixture(scope="module")
def healthy(fleet):
    with WorkerWatch(fleet) as watch, start_load(_url(fleet), duration=DURATION, connections=CONNECTIONS) as load:
        pass
    result = load.result()
    print(f"\nhealthy: {result.line()}")
    for name in APP_HOSTS:
        print(f"{name}: {watch.recycles_per_worker(name):.1f} recycles per worker")
    return result, watch


def test_sustained_load_with_recycling_workers_has_no_failed_request(healthy):
    result, watch = healthy
    assert result.sent > 0
    assert result.non_2xx == 0, result.line()
    assert result.errors.total == 0, result.line()
    for name in APP_HOSTS:
        assert watch.recycles_per_worker(name) >= 3, f"{name}: workers did not recycle 3 times; lower app_max_requests"


def test_app_service_stopped_mid_run_fails_no_request(fleet, healthy):
    app1 = fleet["app1"]
    try:
        with start_load(_url(fleet), duration=DURATION, connections=CONNECTIONS) as load:
            time.sleep(DURATION / 3)
            app1.run_expect([0], f"systemctl stop {APP_UNIT}")
            time.sleep(DURATION / 3)
            app1.run_expect([0], f"systemctl start {APP_UNIT}")
        result = load.result()
    finally:
        app1.run(f"systemctl start {APP_UNIT}")
        _wait_ready(app1)
    print(f"\napp1 stopped mid-run: {result.line()}")
    assert result.non_2xx == 0, result.line()
    assert result.errors.total == 0, result.line()


def _set_link(machine: str, state: str) -> None:
    subprocess.run(["ip", "link", "set", network.veth_name(machine), state], check=True)


def test_app_host_cut_off_mid_run_fails_no_request_and_keeps_p99(fleet, healthy):
    healthy_result, _ = healthy
    try:
        with start_load(_url(fleet), duration=DURATION, connections=CONNECTIONS) as load:
            time.sleep(DURATION / 3)
            _set_link("app1", "down")
            time.sleep(DURATION / 3)
            _set_link("app1", "up")
        result = load.result()
    finally:
        _set_link("app1", "up")
        _wait_ready(fleet["app1"])
    print(f"\napp1 cut off mid-run: {result.line()}")
    assert result.non_2xx == 0, result.line()
    assert result.errors.total == 0, result.line()
    assert result.p99_ms <= healthy_result.p99_ms + 1000, (result.line(), healthy_result.line())
