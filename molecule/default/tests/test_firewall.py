"""The host firewall (common role): what answers whom, proved from the control node and from the
other fleet hosts, and that no converge can lock Ansible out.

A dropped connection times out (policy drop): a short timeout tells it from a refusal (nothing
listening), which would say nothing about the firewall.
"""

import ipaddress
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import control_node_address, host_address, ssh_command, templated_vars

REPO = Path(os.environ.get("MOLECULE_PROJECT_DIRECTORY") or Path(__file__).resolve().parents[3])
BIN = Path(sys.executable).parent
RULESET = "/etc/fastapi-fleet-firewall.nft"
UNIT = "fastapi-fleet-firewall.service"
TIMEOUT = 2.0
# Who may reach a tier port (firewall rule sources): nginx from anywhere, the rest from a group.
TIERS = {
    "nginx_http_port": ("loadbalancers", None),
    "nginx_https_port": ("loadbalancers", None),
    "app_port": ("app", "loadbalancers"),
    "postgresql_port": ("postgres", "app"),
    "redis_port": ("redis", "app"),
}
DEFAULT_PORTS = {
    "nginx_http_port": 80,
    "nginx_https_port": 443,
    "app_port": 8000,
    "postgresql_port": 5432,
    "redis_port": 6379,
}


@pytest.fixture(scope="module")
def fw(host):
    runner = host.backend.ansible_runner
    v = templated_vars(
        host,
        {"fleet_address": host_address(host), "common_firewall_admin_networks": ["0.0.0.0/0", "::/0"], **DEFAULT_PORTS},
    )
    name = host.backend.host
    groups = {group: runner.get_hosts(group) for group in ("loadbalancers", "app", "postgres", "redis")}
    expression = "{{ dict(groups['all'] | zip(groups['all'] | map('fleet_address', hostvars))) }}"
    addresses = host.ansible("debug", json.dumps({"msg": expression}), check=False)["msg"]
    return {
        "name": name,
        "address": v["fleet_address"],
        "admin_networks": [ipaddress.ip_network(n) for n in v["common_firewall_admin_networks"]],
        "ports": {key: int(v[key]) for key in DEFAULT_PORTS},
        "groups": groups,
        "others": [other for other in runner.get_hosts("all") if other != name],
        "addresses": addresses,
        "runner": runner,
    }


def _outcome(address: str, port: int) -> str:
    """connected, refused (nothing listens) or dropped (no answer: the firewall)."""
    try:
        with socket.create_connection((address, port), timeout=TIMEOUT):
            return "connected"
    except TimeoutError:
        return "dropped"
    except ConnectionRefusedError:
        return "refused"


def _outcome_from(client, address: str, port: int) -> str:
    """The same, with the connection made by another fleet host."""
    probe = f"exec 3<>/dev/tcp/{address}/{port}"
    result = client.run(f"timeout {TIMEOUT} bash -c '{probe}'")
    return {0: "connected", 124: "dropped"}.get(result.rc, "refused")


def _open_ports(fw) -> list[tuple[str, int]]:
    """(key, port) of every tier port this host serves."""
    return [(key, fw["ports"][key]) for key, (group, _) in TIERS.items() if fw["name"] in fw["groups"][group]]


def _ruleset(host) -> str:
    """The host's whole loaded ruleset, without counters."""
    return host.check_output("nft -s list ruleset")


def _control_node_ruleset() -> str:
    return subprocess.run(["nft", "-s", "list", "ruleset"], capture_output=True, text=True, check=True).stdout


def test_ruleset_loaded_with_policy_drop(host):
    table = json.loads(host.check_output("nft -j list table inet fastapi_fleet"))["nftables"]
    chains = [item["chain"] for item in table if "chain" in item]
    assert [(c["name"], c["hook"], c["policy"]) for c in chains] == [("input", "input", "drop")]
    ruleset = host.file(RULESET)
    assert ruleset.mode == 0o600
    assert host.run(f"nft -c -f {RULESET}").rc == 0
    assert host.service(UNIT).is_enabled
    assert host.service(UNIT).is_running


def test_unit_loads_the_ruleset_as_at_boot(host):
    verify = host.run(f"systemd-analyze verify {UNIT}")
    assert verify.rc == 0, verify.stderr
    before = _ruleset(host)
    # One command, so the firewall is back even if this session were lost: stop removes the
    # table (firewall off), start loads the file again.
    cycle = host.run(
        f"systemctl stop {UNIT}; nft list table inet fastapi_fleet >/dev/null 2>&1; loaded=$?; "
        f"systemctl start {UNIT} && test $loaded -ne 0"
    )
    assert cycle.rc == 0, "the table outlived the unit's stop, or the unit did not start"
    assert _ruleset(host) == before


def test_ansible_session_rule_comes_before_every_other_accept(host):
    rules = host.check_output("nft list chain inet fastapi_fleet input").splitlines()
    accepts = [line.strip() for line in rules if line.strip().endswith("accept") or "accept comment" in line]
    # Loopback and established traffic first, then Ansible's own address.
    assert accepts[0].startswith('iif "lo" accept')
    assert accepts[1].startswith("ct state established,related accept")
    address = control_node_address(host)
    assert accepts[2].startswith(f"{'ip6' if ':' in address else 'ip'} saddr {address} tcp dport 22 accept")


def test_ssh_answers_the_control_node(host):
    proc = subprocess.run(ssh_command(host, "true"), capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr


def test_tier_ports_answer_the_control_node_only_where_public(host, fw):
    for key, port in _open_ports(fw):
        assert host.socket(f"tcp://{fw['address']}:{port}").is_listening, key
        expected = "connected" if TIERS[key][1] is None else "dropped"
        assert _outcome(fw["address"], port) == expected, f"{key} {port} from the control node"


def test_unserved_ports_are_dropped_not_refused(fw):
    # Nothing listens on 9 (discard): without the firewall this would be a refusal.
    assert _outcome(fw["address"], 9) == "dropped"


def _require_others(fw) -> None:
    if not fw["others"]:
        pytest.skip("no other host in this inventory to connect from (the control node's view is tested above)")


def test_tier_ports_answer_exactly_their_source_groups(fw):
    _require_others(fw)
    for other in fw["others"]:
        client = fw["runner"].get_host(other)
        for key, port in _open_ports(fw):
            source = TIERS[key][1]
            allowed = source is None or other in fw["groups"][source]
            outcome = _outcome_from(client, fw["address"], port)
            assert outcome == ("connected" if allowed else "dropped"), f"{other} -> {fw['name']} {key} {port}"


def test_ssh_answers_other_hosts_only_from_admin_networks(fw):
    _require_others(fw)
    for other in fw["others"]:
        client = fw["runner"].get_host(other)
        source = ipaddress.ip_address(fw["addresses"][other])
        allowed = any(source in network for network in fw["admin_networks"] if network.version == source.version)
        outcome = _outcome_from(client, fw["address"], 22)
        assert outcome == ("connected" if allowed else "dropped"), f"{other} -> {fw['name']} ssh"


def _converge(host, tmp_path: Path, extra: dict) -> subprocess.CompletedProcess:
    """The common role alone on this host, with the inventory testinfra uses and extra variables."""
    playbook = tmp_path / "common.yml"
    playbook.write_text("- name: Common\n  hosts: all\n  become: true\n  roles:\n    - role: common\n")
    inventory = host.backend.ansible_inventory or os.environ["MOLECULE_INVENTORY_FILE"]
    command = [BIN / "ansible-playbook", "-i", inventory, "--limit", host.backend.host, playbook]
    command += ["-e", json.dumps(extra)]
    env = {**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0"}
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=1200, check=False)


def _sha256(host, path: str) -> str:
    return host.check_output(f"sha256sum {path}").split()[0]


def test_no_converge_can_lock_ansible_out(host, fw, tmp_path):
    file_before = _sha256(host, RULESET)
    control_node_before = _control_node_ruleset()
    try:
        # Admin networks that miss the control node, and rules that drop SSH and then everything.
        wrong = {
            "common_firewall_admin_networks": ["192.0.2.0/24"],
            "common_firewall_extra_rules": ["tcp dport 22 drop", "drop"],
        }
        run = _converge(host, tmp_path, wrong)
        assert run.returncode == 0, run.stdout[-4000:]
        proc = subprocess.run(ssh_command(host, "true"), capture_output=True, text=True, timeout=30)
        assert proc.returncode == 0, f"a new SSH session was refused: {proc.stderr}"
        loaded = _ruleset(host)
        assert "tcp dport 22 drop" in loaded
        # The wrong rules are live (so the session survived them, not their absence).
        if fw["name"] in fw["groups"]["loadbalancers"]:
            assert _outcome(fw["address"], fw["ports"]["nginx_https_port"]) == "dropped"

        # An invalid rule: nft -c rejects it, the play fails with nft's message, nothing changes.
        file_wrong = _sha256(host, RULESET)
        bad = _converge(host, tmp_path, {"common_firewall_extra_rules": ["tcp dport 22 dorp"]})
        assert bad.returncode != 0
        assert "Error:" in bad.stdout + bad.stderr, (bad.stdout + bad.stderr)[-4000:]
        assert "dorp" in bad.stdout + bad.stderr
        assert _ruleset(host) == loaded
        assert _sha256(host, RULESET) == file_wrong
    finally:
        restore = _converge(host, tmp_path, {})
    assert restore.returncode == 0, restore.stdout[-4000:]
    assert _sha256(host, RULESET) == file_before
    assert "dorp" not in _ruleset(host)
    # The machine's firewall lives in its own network namespace: the control node's is untouched.
    assert _control_node_ruleset() == control_node_before
