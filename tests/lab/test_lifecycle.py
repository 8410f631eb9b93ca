"""A real machine: up, reachable over SSH, idempotent; down after a simulated crash leaves no trace."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fleet.bench import ansible_runs
from fleet.lab import aptcache, machines, network, operations
from fleet.lab.config import LabConfig, MachineSpec
from fleet.lab.state import LabState

NAME = "pytest-lab1"
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def cfg():
    if os.geteuid() != 0:
        pytest.fail("the lab lifecycle test needs root (run the suite as scripts/test.sh does)")
    config = LabConfig.from_env()
    yield config
    operations.down(config, [NAME], log=lambda _: None)


def _ssh(cfg, command):
    return subprocess.run(operations.ssh_command(cfg, NAME, command), capture_output=True, text=True, timeout=60)


def _traces(cfg):
    paths = machines.MachinePaths(cfg, NAME)
    return {
        "processes": machines.nspawn_pids(paths) + machines.rooted_pids(paths),
        "mounts": machines.mounted_under(paths.base) if paths.base.exists() else [],
        "netns": NAME in network.netns_names(),
        "veth": network.link_exists(network.veth_name(NAME)),
        "dir": paths.base.exists(),
        "cgroups": [d for d in machines.cgroup_dirs(NAME) if d.exists()],
    }


def test_up_boots_a_reachable_systemd_machine(cfg):
    (record,) = operations.up(cfg, [MachineSpec(NAME, "bookworm")], log=lambda _: None)
    proc = _ssh(
        cfg, ["hostname", "&&", "systemctl", "is-system-running", "&&", "ip", "-4", "-o", "addr", "show", "eth0"]
    )
    assert proc.returncode == 0, proc.stderr
    hostname, state, addr_line = proc.stdout.splitlines()
    assert hostname == NAME
    assert state in ("running", "degraded")
    assert f"inet {record.address}/" in addr_line


def test_machine_has_its_own_cgroup_tree(cfg):
    # Two machines must never share cgroups: one's systemd would see (and kill) the other's units.
    pids = machines.rooted_pids(machines.MachinePaths(cfg, NAME))
    assert pids
    for pid in pids:
        lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
        named = [line for line in lines if line.split(":")[1] in ("name=systemd", "")]
        assert named, lines
        assert all(f"/{machines.LAB_CGROUP}/{NAME}/" in line for line in named), named


def test_machine_fetches_packages_through_the_shared_cache(cfg):
    # apt-cacher-ng is installed by scripts/setup.sh: the machine's apt must go through it.
    proc = _ssh(cfg, ["apt-config", "dump", "Acquire::http::Proxy"])
    assert proc.returncode == 0, proc.stderr
    assert f'"http://{cfg.gateway}:3142/"' in proc.stdout
    proc = _ssh(cfg, ["apt-get", "-q", "update"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    logged = (aptcache.cache_dir(cfg) / "log" / "apt-cacher.log").read_text()
    assert "InRelease" in logged or "Release" in logged


CAP_NET_ADMIN = 12


def test_machine_administers_its_own_network_only(cfg):
    # CAP_NET_ADMIN in the container's bounding set, acting in its own network namespace: an
    # address added to its loopback does not appear on the host's.
    proc = _ssh(
        cfg,
        [
            "grep", "^CapBnd:", "/proc/1/status", "&&",
            "ip", "addr", "add", "192.0.2.77/32", "dev", "lo", "&&",
            "ip", "-o", "addr", "show", "dev", "lo", "&&",
            "ip", "addr", "del", "192.0.2.77/32", "dev", "lo",
        ],
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    capabilities = int(proc.stdout.splitlines()[0].split()[1], 16)
    assert capabilities & (1 << CAP_NET_ADMIN)
    assert "192.0.2.77/32" in proc.stdout
    host_lo = subprocess.run(["ip", "-o", "addr", "show", "dev", "lo"], capture_output=True, text=True, check=True)
    assert "192.0.2.77" not in host_lo.stdout


def test_up_again_changes_nothing(cfg):
    before = machines.nspawn_pids(machines.MachinePaths(cfg, NAME))
    messages: list[str] = []
    operations.up(cfg, [MachineSpec(NAME, "bookworm")], log=messages.append)
    assert messages == [f"{NAME}: already running at {operations.instance_configs(cfg, [NAME])[0]['address']}"]
    assert machines.nspawn_pids(machines.MachinePaths(cfg, NAME)) == before


def test_inventory_describes_the_machine(cfg):
    inventory = operations.inventory(cfg, [NAME])
    host = inventory["all"]["children"]["lab"]["hosts"][NAME]
    assert host["ansible_user"] == "root"
    assert Path(host["ansible_ssh_private_key_file"]).exists()
    assert "StrictHostKeyChecking=yes" in host["ansible_ssh_common_args"]


def test_an_added_address_is_one_more_inventory_host_on_the_machine(cfg, tmp_path):
    # fleet bench ansible's fleets: inventory hosts that share a machine, each at an address of
    # its own, reached over SSH with the machine's host key checked strictly.
    machine = operations.instance_configs(cfg, [NAME])[0]["address"]
    taken = {record["address"] for record in operations.instance_configs(cfg, None)}
    extra = str(max(a for a in cfg.subnet.hosts() if str(a) not in taken and a != cfg.gateway))
    ansible_runs.add_address(NAME, extra, cfg.subnet.prefixlen)
    ansible_runs.add_address(NAME, extra, cfg.subnet.prefixlen)  # present already: nothing to do
    known = tmp_path / "known_hosts"
    machine_of = {machine: machine, extra: machine}
    known.write_text(
        "".join(f"{line}\n" for line in ansible_runs.known_hosts_lines(cfg.known_hosts.read_text(), machine_of))
    )
    inventory = ansible_runs.write_inventory(
        tmp_path / "inventory", ["pytest-n01", "pytest-n02"], [machine, extra], "bookworm", str(known), machine_of
    )
    ping = subprocess.run(
        [BIN / "ansible", "-i", str(inventory), "all", "-m", "ansible.builtin.command", "-a", "hostname"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert ping.returncode == 0, ping.stdout + ping.stderr
    assert ping.stdout.count(f"| CHANGED | rc=0 >>\n{NAME}") == 2, ping.stdout


def test_down_after_a_crash_leaves_no_trace(cfg):
    # Simulate a crash: nspawn killed outright and the machine missing from the state file.
    paths = machines.MachinePaths(cfg, NAME)
    for pid in machines.nspawn_pids(paths):
        os.kill(pid, signal.SIGKILL)
    time.sleep(0.5)
    assert machines.rooted_pids(paths), "the container outlives its nspawn: this is what down must find"
    state = LabState.load(cfg.state_file)
    state.machines.pop(NAME)
    state.save(cfg.state_file)

    operations.down(cfg, [NAME], log=lambda _: None)

    assert _traces(cfg) == {"processes": [], "mounts": [], "netns": False, "veth": False, "dir": False, "cgroups": []}
    others = LabState.load(cfg.state_file).machines
    if not others:
        assert not network.link_exists(cfg.bridge)
        assert network.tagged_rules() == []
        assert json.loads(cfg.state_file.read_text())["ip_forward_before"] is None
