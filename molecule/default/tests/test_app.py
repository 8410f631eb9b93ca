"""The app role, proved on every app host: service, release layout, sandbox, restart, logs, schema."""

import importlib.util
import json
import os
import re
import shlex
import time
import uuid
from pathlib import Path

import pytest
from clients import curl
from conftest import host_address, inventory_vars

APP = "fastapi-fleet"
UNIT = f"{APP}.service"
USER = APP
ROOT = f"/opt/{APP}"
ENV_FILE = f"/etc/{APP}/app.env"
LOG_DIR = f"/var/log/{APP}"
LOGROTATE = f"/etc/logrotate.d/{APP}"
PORT = 8000
MAX_EXPOSURE = 3.0
MAX_RECOVERY_SECONDS = 20
REPO = Path(os.environ.get("MOLECULE_PROJECT_DIRECTORY") or Path(__file__).resolve().parents[3])


def _get(host, path: str, headers: dict | None = None, timeout: float = 3.0) -> tuple[int, bytes]:
    """Request the app directly (no load balancer) at its fleet address, from the host itself
    (the firewall opens the app port to the load balancers only)."""
    options = [item for name, value in (headers or {}).items() for item in ("-H", f"{name}: {value}")]
    status, body = curl(host, f"http://{host_address(host)}:{PORT}{path}", *options, timeout=timeout)
    return status, body.encode()


def _env(host) -> dict[str, str]:
    values = {}
    for line in host.file(ENV_FILE).content_string.splitlines():
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            values[key] = value.strip("'")
    return values


def _current_release(host) -> str:
    return host.file(f"{ROOT}/current").linked_to.rsplit("/", 1)[-1]


def _expected_release() -> str:
    """The role's default release name for the control node's app/: its version and source digest."""
    plugin = REPO / "plugins" / "lookup" / "fleet_source_digest.py"
    spec = importlib.util.spec_from_file_location("fleet_source_digest", plugin)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    version = re.search(r'(?m)^version\s*=\s*"([^"]+)"', (REPO / "app" / "pyproject.toml").read_text()).group(1)
    return f"{version}-{module.source_digest(REPO / 'app')}"


def _main_pid(host) -> int:
    return int(host.check_output(f"systemctl show -p MainPID --value {UNIT}"))


def _uid(host, pid: int) -> int:
    status = host.file(f"/proc/{pid}/status").content_string
    return int(re.search(r"^Uid:\s+(\d+)", status, re.M).group(1))


def _wait_ready(host, deadline: float) -> bool:
    while time.monotonic() < deadline:
        try:
            if _get(host, "/ready", timeout=1.0)[0] == 200:
                return True
        except OSError:
            pass
        time.sleep(0.2)
    return False


def test_service_enabled_and_running(host):
    service = host.service(APP)
    assert service.is_enabled
    assert service.is_running
    assert host.check_output(f"systemctl show -p Type --value {UNIT}") == "notify"


def test_app_user_is_a_system_account_without_login(host):
    user = host.user(USER)
    assert user.exists
    assert user.uid < 1000
    assert user.shell in ("/usr/sbin/nologin", "/bin/false")
    assert user.group == USER
    # Its "home" is the release root, owned by root: nothing there belongs to the user.
    assert host.file(ROOT).user == "root"
    assert host.run(f"find {ROOT} -user {USER} -print -quit").stdout.strip() == ""


def test_master_and_workers_run_unprivileged_with_expected_count(host):
    master = _main_pid(host)
    assert master > 0
    workers = [int(p) for p in host.check_output(f"pgrep -P {master}").split()]
    expected = int(_env(host)["APP_WORKERS"])
    assert len(workers) == expected
    if "app_workers" not in inventory_vars(host):
        # Role default: one async worker per usable vCPU.
        assert expected == int(host.check_output("nproc"))
    app_uid = host.user(USER).uid
    for pid in [master, *workers]:
        assert _uid(host, pid) == app_uid, pid
    assert "gunicorn" in host.file(f"/proc/{master}/cmdline").content_string


def test_listens_on_fleet_address_and_loopback(host):
    assert host.socket(f"tcp://{host_address(host)}:{PORT}").is_listening
    assert host.socket(f"tcp://127.0.0.1:{PORT}").is_listening


def test_current_points_at_the_complete_release(host):
    release = _current_release(host)
    # Named by content: the version and the digest of the source the wheel was built from.
    assert release == _expected_release()
    current = host.file(f"{ROOT}/current")
    assert current.is_symlink
    assert current.linked_to == f"{ROOT}/releases/{release}"
    assert host.file(f"{ROOT}/releases/{release}/.installed").exists
    assert host.file(f"{ROOT}/releases/{release}/venv/bin/gunicorn").exists
    assert not host.file(f"{ROOT}/releases/{release}/wheels").exists
    # The release's code is root's: the service cannot change it.
    assert host.file(f"{ROOT}/releases/{release}/venv").user == "root"
    assert host.run(f"runuser -u {USER} -- test -w {ROOT}/releases/{release}/venv").rc != 0
    # The running release, as the app itself knows it.
    status, body = _get(host, "/health")
    assert status == 200
    assert json.loads(body)["release"] == release
    assert release.startswith(json.loads(body)["version"] + "-")
    status, body = _get(host, "/ready")
    assert status == 200, body
    assert json.loads(body)["release"] == release


def test_env_file_is_private_to_the_app_group(host):
    env = host.file(ENV_FILE)
    assert env.mode == 0o640
    assert env.user == "root"
    assert env.group == USER
    values = _env(host)
    # TLS to both data tiers, the servers verified against the fleet's CA.
    assert values["APP_DATABASE_URL"].startswith("postgresql://")
    assert values["APP_DATABASE_URL"].endswith("?sslmode=verify-full&sslrootcert=/etc/ssl/fastapi-fleet/ca.crt")
    assert values["APP_REDIS_URL"].startswith("rediss://")
    assert values["APP_REDIS_URL"].endswith("?ssl_cert_reqs=required&ssl_ca_certs=/etc/ssl/fastapi-fleet/ca.crt")
    assert values["APP_DOCS_ENABLED"] == "false"
    assert values["APP_BIND"].split(",")[0] == f"{host_address(host)}:{PORT}"
    # Outside the release and the same for every release: the app knows its release itself.
    assert "APP_RELEASE" not in values
    assert host.run(f"runuser -u nobody -- cat {ENV_FILE}").rc != 0


def test_health_and_ready_answer_directly(host):
    status, body = _get(host, "/health")
    assert status == 200
    health = json.loads(body)
    assert health["status"] == "ok"
    assert health["hostname"] == host.check_output("hostname")
    status, body = _get(host, "/ready")
    assert status == 200, body


def _foreign_processes_in_unit_cgroup(host) -> int:
    """Processes of other PID namespaces (shown as 0) in the unit's cgroup.

    Containers started without their own cgroup subtree share `system.slice/<unit>` with
    every other container running the same unit; systemd then can neither kill nor wait
    for "its" processes correctly, so its restart timing says nothing about the unit.
    """
    group = host.check_output(f"systemctl show -p ControlGroup --value {UNIT}")
    for root in ("/sys/fs/cgroup/unified", "/sys/fs/cgroup", "/sys/fs/cgroup/systemd"):
        procs = host.file(f"{root}{group}/cgroup.procs")
        if procs.exists:
            return procs.content_string.split().count("0")
    return 0


def test_back_within_seconds_after_kill_9_of_the_master(host):
    foreign = _foreign_processes_in_unit_cgroup(host)
    assert foreign == 0, f"{foreign} processes of another machine share this unit's cgroup"
    before = _main_pid(host)
    restarts = int(host.check_output(f"systemctl show -p NRestarts --value {UNIT}"))
    host.run_expect([0], f"kill -9 {before}")
    started = time.monotonic()
    deadline = started + MAX_RECOVERY_SECONDS + 10
    ready = False
    while time.monotonic() < deadline:
        pid = _main_pid(host)
        if pid not in (0, before) and _wait_ready(host, time.monotonic() + 0.5):
            ready = True
            break
        time.sleep(0.2)
    elapsed = time.monotonic() - started
    print(f"{host.backend.hostname}: ready again {elapsed:.1f} s after kill -9 of the master")
    assert ready, "the service did not come back"
    assert elapsed < MAX_RECOVERY_SECONDS
    assert host.service(APP).is_running
    # One automatic restart, not a crash loop (e.g. old workers still holding the port).
    assert int(host.check_output(f"systemctl show -p NRestarts --value {UNIT}")) == restarts + 1


def test_logrotate_config_is_valid(host):
    conf = host.file(LOGROTATE)
    assert conf.exists
    assert not conf.contains("^[[:space:]]*copytruncate")
    assert conf.contains("USR1")
    result = host.run(f"logrotate -d {LOGROTATE}")
    assert result.rc == 0, result.stderr


def test_forced_rotation_keeps_logging_to_the_new_file(host):
    log = f"{LOG_DIR}/app.log"
    assert _get(host, "/health")[0] == 200
    host.run_expect([0], f"logrotate -f {LOGROTATE}")
    assert host.file(f"{log}.1").exists
    new = host.file(log)
    assert new.exists
    assert new.user == USER
    assert new.mode == 0o640
    # Every worker reopens the file on USR1: requests after the rotation land in the new
    # file, whichever worker serves them.
    deadline = time.monotonic() + 10
    landed = []
    while time.monotonic() < deadline and len(landed) < 6:
        request_id = f"rotate-{uuid.uuid4().hex}"
        assert _get(host, "/health", headers={"X-Request-ID": request_id})[0] == 200
        time.sleep(0.3)
        if request_id in host.file(log).content_string:
            landed.append(request_id)
        else:
            landed.clear()
    assert len(landed) == 6, "requests after rotation do not reach the new log file"
    assert not any(r in host.file(f"{log}.1").content_string for r in landed)
    assert host.file(f"{LOG_DIR}/access.log").size > 0


def test_systemd_unit_verifies_and_is_sandboxed(host):
    verify = host.run(f"systemd-analyze verify {UNIT}")
    assert verify.rc == 0, verify.stderr
    assert UNIT not in verify.stderr
    output = host.check_output(f"systemd-analyze security --no-pager {UNIT}")
    exposure = float(re.search(r"Overall exposure level for \S+: ([\d.]+)", output).group(1))
    print(f"{host.backend.hostname}: systemd-analyze security exposure {exposure}")
    assert exposure < MAX_EXPOSURE
    show = host.check_output(
        f"systemctl show -p ProtectSystem -p NoNewPrivileges -p CapabilityBoundingSet -p ReadWritePaths {UNIT}"
    )
    assert "ProtectSystem=strict" in show
    assert "NoNewPrivileges=yes" in show
    assert "CapabilityBoundingSet=\n" in show + "\n"
    assert f"ReadWritePaths={LOG_DIR}" in show


def test_service_sees_a_read_only_system_except_its_log_dir(host):
    pid = _main_pid(host)
    # Even root, inside the service's mount namespace, cannot write /etc or /opt there.
    for path in (f"/etc/{APP}/.probe", f"{ROOT}/.probe"):
        probe = host.run(f"nsenter -t {pid} -m touch {path}")
        assert probe.rc != 0, path
        assert "Read-only file system" in probe.stderr, probe.stderr
    writable = host.run(f"nsenter -t {pid} -m sh -c 'touch {LOG_DIR}/.probe && rm {LOG_DIR}/.probe'")
    assert writable.rc == 0, writable.stderr


def _head_revision(host, versions_dir: str) -> str:
    revisions, parents = set(), set()
    for name in host.check_output(f"ls {versions_dir}").split():
        if name.endswith(".py"):
            text = host.file(f"{versions_dir}/{name}").content_string
            revisions.add(re.search(r'^revision\b.*?=\s*["\']([^"\']+)', text, re.M).group(1))
            parent = re.search(r'^down_revision\b.*?=\s*["\']([^"\']+)', text, re.M)
            if parent:
                parents.add(parent.group(1))
    heads = revisions - parents
    assert len(heads) == 1, heads
    return heads.pop()


@pytest.mark.parametrize("query", ["select version_num from alembic_version", "select count(*) >= 0 from items"])
def test_migrations_applied(host, query):
    release = _current_release(host)
    versions_dir = host.check_output(
        f"ls -d {ROOT}/releases/{release}/venv/lib/python3*/site-packages/fastapi_fleet_app/migrations/versions"
    )
    script = (
        "import os, psycopg; "
        "c = psycopg.connect(os.environ['APP_DATABASE_URL'], connect_timeout=5); "
        f"print(c.execute({query!r}).fetchone()[0])"
    )
    python = f"{ROOT}/current/venv/bin/python"
    inner = f"set -a; . {ENV_FILE}; set +a; exec {python} -c {shlex.quote(script)}"
    result = host.run(f"runuser -u {USER} -- sh -c {shlex.quote(inner)}")
    assert result.rc == 0, result.stderr
    value = result.stdout.strip()
    if "alembic_version" in query:
        assert value == _head_revision(host, versions_dir)
    else:
        assert value == "True"
