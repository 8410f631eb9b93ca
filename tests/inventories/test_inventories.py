"""The shipped inventories parse, keep the expected groups, and the example vault holds every secret."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from fleet.docs.cli import REPO

GROUPS = {"loadbalancers", "app", "postgres", "redis"}
EXAMPLE_VAULT_PASSWORD = "fastapi-fleet-example"
BIN = Path(sys.executable).parent  # the virtualenv's ansible tools


@pytest.fixture(scope="module")
def vault_pass(tmp_path_factory):
    path = tmp_path_factory.mktemp("vault") / "pass"
    path.write_text(EXAMPLE_VAULT_PASSWORD)
    return str(path)


def ansible(tool: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([BIN / tool, *args], cwd=REPO, capture_output=True, text=True, check=False)


def inventory(name: str, vault_pass: str) -> dict:
    proc = ansible("ansible-inventory", "-i", f"inventories/{name}", "--vault-password-file", vault_pass, "--list")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.mark.parametrize("name", ["lab", "production"])
def test_inventory_has_every_tier(name, vault_pass):
    data = inventory(name, vault_pass)
    for group in GROUPS:
        assert data.get(group, {}).get("hosts"), f"{name}: group {group} is empty"


def test_lab_is_the_default_inventory():
    cfg = (REPO / "ansible.cfg").read_text()
    assert re.search(r"^inventory = inventories/lab$", cfg, re.M)


def test_lab_hosts_tell_the_lab_what_to_boot(vault_pass):
    hostvars = inventory("lab", vault_pass)["_meta"]["hostvars"]
    assert all({"lab_distro", "ansible_host"} <= set(hv) for hv in hostvars.values())


def test_example_vault_defines_every_secret_the_inventory_uses(vault_pass):
    group_vars = REPO / "inventories/production/group_vars/all"
    used = "".join(path.read_text() for path in sorted(group_vars.glob("*.yml")) if path.name != "vault.yml")
    wanted = set(re.findall(r"\{\{ (vault_\w+)\b", used))
    assert wanted
    proc = ansible(
        "ansible-vault", "view", "--vault-password-file", vault_pass, "inventories/production/group_vars/all/vault.yml"
    )
    assert proc.returncode == 0, proc.stderr
    assert set(yaml.safe_load(proc.stdout)) == wanted


@pytest.mark.parametrize("name", ["lab", "production"])
def test_site_playbook_syntax(name, vault_pass):
    proc = ansible(
        "ansible-playbook",
        "--syntax-check",
        "-i",
        f"inventories/{name}",
        "--vault-password-file",
        vault_pass,
        "playbooks/site.yml",
    )
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("inventory", ["molecule/fleet/inventory", "inventories/bench"])
def test_lab_based_inventories_use_every_lab_group_vars_file(inventory):
    # molecule/fleet and the bench lab link the lab's group_vars file by file (beside their
    # own settings): a lab file one does not link would silently be missing there.
    lab = REPO / "inventories" / "lab" / "group_vars" / "all"
    linked = REPO / inventory / "group_vars" / "all"
    for path in lab.iterdir():
        link = linked / path.name
        assert link.is_symlink() and link.resolve() == path.resolve(), f"link {link} to {path}"
