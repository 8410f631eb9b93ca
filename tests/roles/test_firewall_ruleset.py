"""The common role's firewall ruleset, rendered by Ansible for the example production inventory:
every tier port is open exactly to the hosts of its source group (at their fleet addresses)."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from fleet.docs.cli import REPO

BIN = Path(sys.executable).parent
CONTROLLER = "203.0.113.250"
APP_HOSTS = "{ 10.0.2.21, 10.0.2.22, 10.0.2.23 }"
LOAD_BALANCERS = "{ 10.0.1.10, 10.0.1.11 }"
PLAYBOOK = """
- name: Render the firewall ruleset of every host
  hosts: all
  gather_facts: false
  tasks:
    - name: Render the common role's template
      ansible.builtin.template:
        src: {repo}/roles/common/templates/firewall.nft.j2
        dest: "{out}/{{{{ inventory_hostname }}}}.nft"
        mode: "0644"
      delegate_to: localhost
      vars:
        ansible_become: false
        common_firewall_controller: {controller}
        common_firewall_controller_port: 22
"""


@pytest.fixture(scope="module")
def rulesets(tmp_path_factory) -> dict[str, str]:
    tmp = tmp_path_factory.mktemp("firewall")
    # The role's defaults as the lowest-precedence inventory variables (below the inventory's
    # group_vars and host vars), as they are below everything in a real role run.
    defaults = yaml.safe_load((REPO / "roles/common/defaults/main.yml").read_text())
    (tmp / "role-defaults.yml").write_text(yaml.safe_dump({"all": {"vars": defaults}}))
    (tmp / "vault-pass").write_text("fastapi-fleet-example")
    (tmp / "render.yml").write_text(PLAYBOOK.format(repo=REPO, out=tmp, controller=CONTROLLER))
    proc = subprocess.run(
        [
            BIN / "ansible-playbook",
            "-i",
            tmp / "role-defaults.yml",
            "-i",
            "inventories/production",
            "--vault-password-file",
            tmp / "vault-pass",
            tmp / "render.yml",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return {path.stem: path.read_text() for path in tmp.glob("*.nft")}


def _accepts(ruleset: str) -> list[str]:
    """The input chain's accept rules, comments dropped, in order."""
    lines = [re.sub(r' comment ".*"$', "", line.strip()) for line in ruleset.splitlines()]
    return [line for line in lines if line.endswith(" accept")]


def _port_rules(ruleset: str) -> list[str]:
    """Accept rules for TCP ports other than SSH."""
    return [rule for rule in _accepts(ruleset) if "tcp dport" in rule and "tcp dport 22 " not in rule]


def test_every_host_has_a_ruleset(rulesets):
    assert set(rulesets) == {
        "lb1.example.internal",
        "lb2.example.internal",
        "app1.example.internal",
        "app2.example.internal",
        "app3.example.internal",
        "db1.example.internal",
        "cache1.example.internal",
        "mon1.example.internal",
    }


def test_ansible_first_then_admin_networks(rulesets):
    for name, ruleset in rulesets.items():
        ssh = [rule for rule in _accepts(ruleset) if "tcp dport 22 " in rule]
        expected = [f"ip saddr {CONTROLLER} tcp dport 22 accept", "ip saddr 198.51.100.0/24 tcp dport 22 accept"]
        assert ssh == expected, name
        accepts = _accepts(ruleset)
        assert accepts[:3] == ['iif "lo" accept', "ct state established,related accept", ssh[0]], name
        assert "type filter hook input priority filter; policy drop;" in ruleset


def _metrics(ports: str) -> list[str]:
    """The metrics ports, open to the monitoring group's host and to the monitoring network."""
    return [
        f"ip saddr {{ 10.0.9.10 }} tcp dport {{ {ports} }} accept",
        f"ip saddr 10.0.9.0/24 tcp dport {{ {ports} }} accept",
    ]


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("lb1.example.internal", ["tcp dport { 80, 443 } accept", *_metrics("9100, 9113")]),
        ("lb2.example.internal", ["tcp dport { 80, 443 } accept", *_metrics("9100, 9113")]),
        *[
            (
                f"app{i}.example.internal",
                [f"ip saddr {LOAD_BALANCERS} tcp dport {{ 8000 }} accept", *_metrics("8000, 9100")],
            )
            for i in (1, 2, 3)
        ],
        ("db1.example.internal", [f"ip saddr {APP_HOSTS} tcp dport {{ 5432 }} accept", *_metrics("9100, 9187")]),
        ("cache1.example.internal", [f"ip saddr {APP_HOSTS} tcp dport {{ 6379 }} accept", *_metrics("9100, 9121")]),
        ("mon1.example.internal", _metrics("9090, 9093, 9100")),
    ],
)
def test_tier_ports_open_to_their_source_groups_only(rulesets, host, expected):
    # The load balancers' sources are their fleet addresses (10.0.1.x), not the public ansible_host.
    assert _port_rules(rulesets[host]) == expected


def test_nft_accepts_every_ruleset(rulesets, tmp_path):
    nft = shutil.which("nft")
    assert nft, "nft is missing on the control node (scripts/setup.sh installs nftables)"
    for name, ruleset in rulesets.items():
        path = tmp_path / f"{name}.nft"
        path.write_text(ruleset)
        proc = subprocess.run([nft, "-c", "-f", path], capture_output=True, text=True, check=False)
        assert proc.returncode == 0, f"{name}: {proc.stderr}"
