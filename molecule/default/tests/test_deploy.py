"""A rolling deploy on the lone app host, under a fixed-rate load (issue 8's proof, one host).

No other app host can carry the traffic, so the host is not drained: it restarts behind its
systemd socket, where connections made meanwhile wait in the backlog. While `fleet load
steady` sends mixed POST/GET/PATCH and /health requests through nginx at a fixed rate,
deploy.yml rolls out N+1 and rollback.yml brings N back: no request fails either time.
The host is left on N, as converged.
"""

import os
import time

import pytest
from conftest import host_address
from deploys import STEADY_CONNECTIONS, current_release, make_release, run_playbook, running_build, running_release

from fleet.load import start_steady

# Below nginx's 20 r/s per client address on /api/ (three requests in four go there).
RATE = 16
# Requests wait in the socket's backlog while the service restarts (the old workers drain
# nginx's keep-alive connections first): far longer than a drained host's roll.
TIMEOUT_S = 30


@pytest.fixture(scope="module")
def inventory(request) -> str:
    return request.config.getoption("ansible_inventory", default=None) or os.environ["MOLECULE_INVENTORY_FILE"]


def _roll_under_load(host, inventory: str, playbook: str, extra_vars: dict):
    # Room in flight for every request of a 15 s wait (a skipped request counts as a failure).
    load = start_steady(
        f"https://{host_address(host)}",
        rate=RATE,
        timeout=TIMEOUT_S,
        max_in_flight=RATE * 15,
        connections=STEADY_CONNECTIONS,
    )
    with load:
        while load.successes < RATE:  # the load flows before the roll starts
            time.sleep(0.1)
        play = run_playbook(inventory, playbook, extra_vars)
    result = load.result()
    print(f"{playbook}: {play.seconds:.0f} s; load: {result.line()}")
    assert play.returncode == 0, play.tail()
    assert result.ok_2xx > 0 and result.failures == 0, result.line()
    return result


def test_deploy_and_rollback_on_one_host_fail_no_request(host, inventory, tmp_path):
    health = f"http://{host_address(host)}:8000/health"
    n = current_release(host)
    result = _roll_under_load(host, inventory, "deploy.yml", {"app_source_dir": str(make_release(tmp_path, "n1"))})
    n1 = current_release(host)
    assert n1 != n and running_release(host, health) == n1
    assert running_build(host, health) == "n1"  # N+1's code answers
    assert set(result.collected) == {n, n1}, result.collected
    _roll_under_load(host, inventory, "rollback.yml", {"fleet_rollback_release": n})
    assert current_release(host) == n and running_release(host, health) == n
    assert running_build(host, health) is None  # N's code again
