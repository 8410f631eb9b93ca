"""Validate before the point of no return, proved per tier on a converged host.

Each case runs one role alone (after the fleet preflight) with ansible-playbook, against
the inventory this verifier uses (molecule's, or pytest's --ansible-inventory), with one
value that passes the role's type checks but that only the service itself can judge. The play must fail with the
service's own message, every file the service reads must stay byte for byte the last good
one (no backup or staging file left behind either) and the service must keep running and
answering; PostgreSQL must still restart. The host is left as converged.
"""

import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest
from clients import curl, redis_local
from conftest import facts, host_address, inventory_vars, templated_vars

REPO = Path(__file__).resolve().parents[3]
ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"
PLAY_TIMEOUT = 900
DEBIAN_PG_VERSIONS = {"bookworm": 15, "trixie": 17}
APP = "fastapi-fleet"
APP_PORT = 8000


@pytest.fixture(scope="module")
def converge_role(host, request, tmp_path_factory):
    """Run one role alone on this host with extra variables; returns the finished process."""
    inventory = request.config.getoption("ansible_inventory", default=None) or os.environ.get("MOLECULE_INVENTORY_FILE")
    hostname = host.backend.get_hostname()
    groups = set(inventory_vars(host).get("group_names", []))
    playbooks = tmp_path_factory.mktemp("safety")

    def run(role: str, group: str, extra_vars: dict) -> subprocess.CompletedProcess:
        if group not in groups:
            pytest.skip(f"{hostname} is not in the {group} group")
        playbook = playbooks / f"{role}.yml"
        # After the fleet preflight, as in site.yml: it publishes what the tiers check against
        # (the app hosts' database demand) without relying on a fact cache.
        playbook.write_text(
            f"- name: Preflight\n  ansible.builtin.import_playbook: {REPO / 'playbooks/preflight.yml'}\n"
            f"- name: The {role} role alone\n  hosts: all\n  become: true\n  roles:\n    - role: {role}\n"
        )
        # The playbook lives outside playbooks/: point the app role at the source tree.
        extra_vars = {
            "app_source_dir": str(REPO / "app"),
            "app_wheelhouse_dir": str(REPO / ".cache/wheelhouse"),
            **extra_vars,
        }
        command = [str(ANSIBLE_PLAYBOOK), "--limit", hostname, "-e", json.dumps(extra_vars), str(playbook)]
        if inventory:
            command[1:1] = ["-i", inventory]
        env = {**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0"}
        return subprocess.run(
            command, cwd=REPO, env=env, capture_output=True, text=True, timeout=PLAY_TIMEOUT, check=False
        )

    return run


def _snapshot(host, *paths: str) -> str:
    """Type, owner, group, mode and link target of everything under the paths, and each file's checksum."""
    quoted = " ".join(shlex.quote(path) for path in paths)
    return host.check_output(
        f"find {quoted} -printf '%p %y %u:%g %m %l\\n' | sort && find {quoted} -type f -exec sha256sum {{}} + | sort"
    )


def _main_pid(host, unit: str) -> int:
    return int(host.check_output(f"systemctl show -p MainPID --value {shlex.quote(unit)}"))


def _assert_failed_with(run: subprocess.CompletedProcess, *expected: str) -> None:
    # ansible-core 2.19 prints a failed task's result on stderr.
    output = run.stdout + run.stderr
    assert run.returncode != 0, f"the play accepted the bad value:\n{output[-3000:]}"
    for text in expected:
        assert text in output, f"{text!r} not in the play's output:\n{output[-3000:]}"


# PostgreSQL ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pg(host):
    version = DEBIAN_PG_VERSIONS[facts(host)["ansible_distribution_release"]]
    v = templated_vars(host, {"postgresql_version": version})
    version = int(v["postgresql_version"])
    return {"conf_dir": f"/etc/postgresql/{version}/main", "unit": f"postgresql@{version}-main"}


def _pg_select_one(host) -> str:
    return host.check_output("cd /tmp && runuser -u postgres -- psql -XAtq -d postgres -c 'SELECT 1'")


def _assert_pg_serves_and_restarts(host, pg) -> None:
    assert host.service(pg["unit"]).is_running
    assert _pg_select_one(host) == "1"
    host.check_output(f"systemctl restart {pg['unit']}")
    assert host.service(pg["unit"]).is_running
    assert _pg_select_one(host) == "1"


@pytest.mark.parametrize(
    ("extra_vars", "message"),
    [
        pytest.param(
            {"postgresql_tuning_overrides": {"fleet_no_such_parameter": 1}},
            'unrecognized configuration parameter "fleet_no_such_parameter"',
            id="unknown-parameter",
        ),
        pytest.param(
            {"postgresql_tuning_overrides": {"shared_buffers": "10 apples"}},
            'invalid value for parameter "shared_buffers"',
            id="bad-value",
        ),
        # No pg_hba.conf input gets past the preflight's forms (test_preflight.py): the
        # rollback of a refused pg_hba.conf is the same code path as these.
    ],
)
def test_postgresql_rejected_configuration_is_rolled_back(host, pg, converge_role, extra_vars, message):
    before = _snapshot(host, pg["conf_dir"])
    pid = _main_pid(host, pg["unit"])
    run = converge_role("postgresql", "postgres", extra_vars)
    _assert_failed_with(run, "The new PostgreSQL configuration was rejected and rolled back", message)
    assert _snapshot(host, pg["conf_dir"]) == before
    # Rejected before any reload or restart.
    assert _main_pid(host, pg["unit"]) == pid
    _assert_pg_serves_and_restarts(host, pg)


def test_postgresql_cluster_that_cannot_start_is_restored(host, pg, converge_role):
    # Valid for `postgres -C`; only a start finds out that the memory cannot be mapped.
    before = _snapshot(host, pg["conf_dir"])
    run = converge_role("postgresql", "postgres", {"postgresql_tuning_overrides": {"shared_buffers": "4TB"}})
    _assert_failed_with(run, "The new PostgreSQL configuration was rejected and rolled back", "shared memory")
    assert _snapshot(host, pg["conf_dir"]) == before
    _assert_pg_serves_and_restarts(host, pg)


# Redis ---------------------------------------------------------------------------------

REDIS_FILES = ("/etc/redis", "/etc/systemd/system/redis-server.service.d")


@pytest.fixture(scope="module")
def redis_admin(host):
    v = templated_vars(host, {"redis_admin_user": "admin", "redis_admin_password": None})
    # On the host, over the unix socket local clients use (the firewall admits Redis from the app hosts only).
    return redis_local(host, v["redis_admin_user"], v["redis_admin_password"])


def test_redis_rejected_acl_is_rolled_back(host, converge_role, redis_admin):
    before = _snapshot(host, *REDIS_FILES)
    pid = _main_pid(host, "redis-server.service")
    run = converge_role("redis", "redis", {"redis_app_acl": "~* &* +@all -@fleet-no-such-category"})
    _assert_failed_with(run, "The new Redis configuration was rejected and rolled back", "ACL")
    assert _snapshot(host, *REDIS_FILES) == before
    assert _main_pid(host, "redis-server.service") == pid
    assert redis_admin.ping()


def test_redis_that_cannot_start_is_restored(host, converge_role, redis_admin):
    # The throwaway server listens on no TCP port: only the restart finds the bad address.
    before = _snapshot(host, *REDIS_FILES)
    # The host's own address stays (the preflight checks the app hosts can reach Redis).
    run = converge_role("redis", "redis", {"redis_bind": ["127.0.0.1", host_address(host), "192.0.2.1"]})
    _assert_failed_with(run, "The new Redis configuration was rejected and rolled back", "192.0.2.1")
    assert _snapshot(host, *REDIS_FILES) == before
    assert host.service("redis-server").is_running
    assert redis_admin.ping()


# App -----------------------------------------------------------------------------------

APP_FILES = (f"/etc/{APP}", f"/etc/systemd/system/{APP}.service", f"/opt/{APP}/current")


def _ready_within(host, seconds: float) -> bool:
    """/ready answers 200 (it also probes PostgreSQL and Redis, which earlier cases restarted)."""
    # From the host itself: the firewall admits the app port from the load balancers only.
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if curl(host, f"http://{host_address(host)}:{APP_PORT}/ready")[0] == 200:
                return True
        except OSError:
            pass
        time.sleep(1)
    return False


@pytest.mark.parametrize(
    ("env", "message"),
    [
        # Refused by the release's check-config (the app's settings model).
        pytest.param({"APP_LOG_LEVEL": "LOUD"}, "invalid configuration: APP_LOG_LEVEL", id="check-config"),
        # Accepted by the settings model, refused by the Gunicorn config module.
        pytest.param({"APP_WORKERS": "0"}, "APP_WORKERS: must be an integer >= 1", id="gunicorn"),
    ],
)
def test_app_rejected_configuration_changes_nothing(host, converge_role, env, message):
    before = _snapshot(host, *APP_FILES)
    pid = _main_pid(host, f"{APP}.service")
    run = converge_role("app", "app", {"app_env_extra": env})
    _assert_failed_with(run, "refused the new configuration; the env file, the unit and current are unchanged", message)
    assert _snapshot(host, *APP_FILES) == before
    assert _main_pid(host, f"{APP}.service") == pid, "the service was restarted"
    assert _ready_within(host, 30)
