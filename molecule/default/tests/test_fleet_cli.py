"""The `fleet` CLI against the converged scenario, run as users run it (a subprocess, -i the scenario's inventory).

Covers: status all green, then exit 1 with redis-server stopped (restarted after); releases;
run's grouped output; logs' host prefixes (also -f until Ctrl-C); smoke; an unreachable
host reported on its own line with exit 3; host keys from UserKnownHostsFile and from
~/.ssh/known_hosts, unknown keys refused.
"""

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import testinfra
import yaml

FLEET = Path(sys.executable).parent / "fleet"
BOGUS = {"ansible_host": "192.0.2.10"}  # TEST-NET-1: never answers


def fleet(*argv, env=None, timeout=300):
    done = subprocess.run([FLEET, *argv], capture_output=True, text=True, timeout=timeout, env=env)
    assert "Traceback" not in done.stdout + done.stderr, done
    return done


def fleet_json(*argv, **kwargs):
    done = fleet(*argv, "--json", **kwargs)
    return done.returncode, json.loads(done.stdout)


def hosts_of(inventory, pattern="all"):
    _, document = fleet_json("status", "-i", inventory, "-l", pattern)
    return [h["host"] for h in document["hosts"]]


def _host_of(line: str) -> str:
    """The host a `fleet logs` line is prefixed with."""
    return line.split(" | ", 1)[0].strip()


def copy_inventory(inventory: str, target: Path, extra: dict) -> Path:
    """The scenario's inventory (group_vars dereferenced) plus one more inventory file."""
    source = Path(inventory)
    if source.is_dir():
        shutil.copytree(source, target, symlinks=False)
    else:
        target.mkdir()
        shutil.copy(source, target / source.name)
        for name in ("group_vars", "host_vars"):
            if (source.parent / name).is_dir():
                shutil.copytree(source.parent / name, target / name, symlinks=False)
    (target / "zz-extra.yml").write_text(yaml.safe_dump(extra))
    return target


def settled(*argv, tries=4):
    """A green run of `fleet ...`, allowing for a few misses: /ready has a 1 s budget and the lab's CPUs are shared."""
    for _ in range(tries):
        done = fleet(*argv)
        if done.returncode == 0:
            break
        time.sleep(5)
    return done


def test_status_all_green(inventory):
    done = settled("status", "--json", "-i", inventory)
    code, document = done.returncode, json.loads(done.stdout)
    assert code == 0, document
    for host in document["hosts"]:
        assert host["reachable"] and host["ok"], host
        units = {s["service"]: s for s in host["services"]}
        if "postgres" in host["groups"]:
            assert units["postgresql"]["unit"].startswith("postgresql@")  # the cluster, not the umbrella unit
        if "app" in host["groups"]:
            assert host["release"]
            assert host["health"]["status"] == host["ready"]["status"] == 200
    table = settled("status", "-i", inventory)
    assert table.returncode == 0
    assert "fleet status" in table.stdout and "redis active (redis-server.service)" in table.stdout


def _stopped(inventory, group, stop, start):
    """Run `stop` on the group's hosts; afterwards `start`, and wait until the whole fleet is green again."""
    hosts = [
        testinfra.get_host(f"ansible://{name}", ansible_inventory=inventory) for name in hosts_of(inventory, group)
    ]
    for host in hosts:
        host.run_expect([0], stop)
    yield hosts
    for host in hosts:
        host.run_expect([0], start)
    deadline = time.monotonic() + 90
    while fleet("status", "-i", inventory).returncode != 0:
        assert time.monotonic() < deadline, f"the fleet did not recover after `{start}`"
        time.sleep(3)


@pytest.fixture
def redis_stopped(inventory):
    yield from _stopped(inventory, "redis", "systemctl stop redis-server", "systemctl start redis-server")


@pytest.fixture
def cluster_stopped(inventory):
    # The cluster's unit as `fleet status` found it on the host (postgresql@<version>-main).
    _, document = fleet_json("status", "-i", inventory, "-l", "postgres")
    units = {s["unit"] for h in document["hosts"] for s in h["services"] if s["service"] == "postgresql"}
    (unit,) = units
    assert unit.startswith("postgresql@") and unit.endswith("-main.service")
    yield from _stopped(inventory, "postgres", f"systemctl stop {unit}", f"systemctl start {unit}")


def test_status_fails_when_redis_is_down(inventory, redis_stopped):
    code, document = fleet_json("status", "-i", inventory)
    assert code == 1
    redis_states = [s["state"] for h in document["hosts"] for s in h["services"] if s["service"] == "redis"]
    assert redis_states and all(state != "active" for state in redis_states)
    ready = [h["ready"] for h in document["hosts"] if h["ready"]]
    assert ready and all(r["status"] == 503 and "redis" in r["body"] for r in ready)
    table = fleet("status", "-i", inventory)
    assert table.returncode == 1
    assert "something is down on:" in table.stdout


def test_status_sees_the_cluster_not_the_umbrella_unit(inventory, cluster_stopped):
    for host in cluster_stopped:
        assert host.run("systemctl is-active postgresql").stdout.strip() == "active"
    code, document = fleet_json("status", "-i", inventory)
    assert code == 1
    clusters = [s for h in document["hosts"] for s in h["services"] if s["service"] == "postgresql"]
    assert clusters and all(s["unit"].startswith("postgresql@") and s["state"] != "active" for s in clusters)


def test_releases_show_the_current_one(inventory):
    code, document = fleet_json("releases", "-i", inventory)
    assert code == 0
    for found in document["hosts"]:
        host = testinfra.get_host(f"ansible://{found['host']}", ansible_inventory=inventory)
        current = Path(host.file("/opt/fastapi-fleet/current").linked_to).name
        assert found["current"] == current
        assert [r["release"] for r in found["releases"] if r["current"]] == [current]


def test_run_groups_output_by_host(inventory):
    done = fleet("run", "-i", inventory, "--", "echo marker-$(hostname)")
    assert done.returncode == 0
    for name in hosts_of(inventory):
        host = testinfra.get_host(f"ansible://{name}", ansible_inventory=inventory)
        hostname = host.check_output("hostname")
        assert f"{name}: exit 0" in done.stdout
        assert f"marker-{hostname}" in done.stdout.split(f"{name}: exit 0", 1)[1]
    failing = fleet("run", "-i", inventory, "--", "exit 3")
    assert failing.returncode == 1
    assert "exit 3" in failing.stdout


def test_logs_are_prefixed_with_the_host(inventory):
    done = fleet("logs", "app", "-n", "5", "-i", inventory)
    assert done.returncode == 0
    app_hosts = hosts_of(inventory, "app")
    lines = done.stdout.splitlines()
    assert lines
    assert all(_host_of(line) in app_hosts for line in lines)


def _lines_of(process: subprocess.Popen) -> queue.Queue:
    """The process' stdout lines as they come (a queue fed by a thread; None at the end)."""
    lines: queue.Queue = queue.Queue()

    def read() -> None:
        for line in process.stdout:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    return lines


def _read_until(lines: queue.Queue, seen: list, done, timeout: float) -> bool:
    """Collect lines into `seen` until done(seen) holds (True), the end or the timeout (False)."""
    deadline = time.monotonic() + timeout
    while not done(seen):
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            return False
        if line is None:
            return False
        seen.append(line)
    return True


def test_logs_follow_until_interrupted(inventory):
    lb_hosts = hosts_of(inventory, "loadbalancers")
    # Ctrl-C on a terminal: SIGINT at its default disposition. A shell starts a background job
    # (`./scripts/test.sh &`) with SIGINT ignored, which children inherit and Python then keeps
    # (no KeyboardInterrupt): this runs fleet through a small exec that restores the default.
    restore_sigint = (
        "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.execv(sys.argv[1], sys.argv[1:])"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", restore_sigint, FLEET, "logs", "nginx", "-f", "-n", "1", "-i", inventory],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines = _lines_of(process)
    before: list[str] = []
    after: list[str] = []
    try:
        # Following on every load balancer: each one's last journal line has come.
        following = _read_until(lines, before, lambda seen: {_host_of(line) for line in seen} >= set(lb_hosts), 120)
        assert following, before
        for name in lb_hosts:
            host = testinfra.get_host(f"ansible://{name}", ansible_inventory=inventory)
            host.run("systemctl reload nginx")  # a fresh journal line while following
        reloaded = _read_until(lines, after, lambda seen: any("eload" in line for line in seen), 120)
        assert reloaded, after
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)
    err = process.stderr.read()
    _read_until(lines, after, lambda seen: False, 5)  # the rest, up to the end
    assert process.returncode == 0, err
    assert "Traceback" not in "\n".join(before + after) + err
    assert all(_host_of(line) in lb_hosts for line in before + after)


def test_smoke_passes(inventory):
    code, document = fleet_json("smoke", "-i", inventory)
    assert code == 0, [c for c in document["checks"] if c["result"] != "pass"]
    passed = {c["name"] for c in document["checks"] if c["result"] == "pass"}
    assert {"tls", "http-redirect", "health", "headers", "item", "rate-limit", "cleanup", "upstreams"} <= passed


def test_unreachable_host_is_reported_per_host(inventory, tmp_path):
    copy = copy_inventory(inventory, tmp_path / "inv", {"all": {"children": {"app": {"hosts": {"bogus1": BOGUS}}}}})
    done = fleet("status", "-i", str(copy))
    assert done.returncode == 3
    assert "bogus1: UNREACHABLE:" in done.stdout
    code, document = fleet_json("status", "-i", str(copy))
    assert code == 3
    by_name = {h["host"]: h for h in document["hosts"]}
    assert by_name["bogus1"]["reachable"] is False and by_name["bogus1"]["error"]
    assert all(h["ok"] for name, h in by_name.items() if name != "bogus1")  # the others are still reported


def _known_hosts_lines(inventory) -> str:
    """The scenario's known_hosts (the lab's), read from the inventory's UserKnownHostsFile."""
    args = subprocess.run(
        [Path(sys.executable).parent / "ansible-inventory", "-i", inventory, "--list"],
        capture_output=True,
        text=True,
        check=True,
    )
    hostvars = json.loads(args.stdout)["_meta"]["hostvars"]
    common = next(iter(hostvars.values()))["ansible_ssh_common_args"]
    path = common.split("UserKnownHostsFile=", 1)[1].split()[0]
    return Path(path).read_text()


def test_host_keys_from_the_users_known_hosts(inventory, tmp_path):
    names = hosts_of(inventory)
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    extra = {"all": {"hosts": {name: {"ansible_ssh_common_args": f"-o UserKnownHostsFile={empty}"} for name in names}}}
    copy = copy_inventory(inventory, tmp_path / "inv", extra)
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    env = {**os.environ, "HOME": str(home)}
    refused = fleet("run", "-i", str(copy), "--", "true", env=env)
    assert refused.returncode == 3
    assert "host key unknown, refusing to connect" in refused.stdout
    (home / ".ssh" / "known_hosts").write_text(_known_hosts_lines(inventory))
    accepted = fleet("run", "-i", str(copy), "--", "true", env=env)
    assert accepted.returncode == 0, accepted.stdout
