"""Helpers shared by the scenario's verifiers."""

import functools
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

UNDEFINED = "__undefined__"

# testinfra runs `ansible-inventory` and `ansible` by name: find them in this virtualenv also
# when pytest is started as .venv/bin/pytest without an activated environment.
_BIN = str(Path(sys.executable).parent)
# molecule/shared: what the deploy verifiers of both scenarios share.
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "shared"))
if _BIN not in os.environ.get("PATH", "").split(os.pathsep):
    os.environ["PATH"] = _BIN + os.pathsep + os.environ.get("PATH", "")


@pytest.fixture(scope="module")
def inventory(request) -> str:
    """The scenario's inventory: pytest's --ansible-inventory, or the one molecule passes."""
    path = request.config.option.ansible_inventory or os.environ.get("MOLECULE_INVENTORY_FILE")
    if not path:
        pytest.fail("run with --ansible-inventory (molecule passes its own)")
    return path


@functools.cache
def _inventory_vars(host) -> dict:
    return host.ansible.get_variables()


def inventory_vars(host) -> dict:
    """The host's inventory variables, untemplated (read once per host: parsing the inventory is slow)."""
    return _inventory_vars(host)


def host_address(host) -> str:
    """The address the control node (and the other tiers) reach the host at."""
    return inventory_vars(host)["ansible_host"]


@functools.cache
def facts(host) -> dict:
    """The host's Ansible facts, gathered once per host."""
    return host.ansible("setup", "filter=ansible_*", check=False)["ansible_facts"]


def templated_vars(host, defaults: dict) -> dict:
    """Inventory variables as Ansible templates them for this host, in one call.

    Role defaults are not visible to an ad-hoc call, so each name comes with the default
    the test assumes when the inventory does not set it.
    """
    expression = ", ".join(f"'{name}': {name} | default('{UNDEFINED}')" for name in defaults)
    values = host.ansible("debug", json.dumps({"msg": "{{ {" + expression + "} }}"}), check=False)["msg"]
    return {name: default if values[name] == UNDEFINED else values[name] for name, default in defaults.items()}


def ssh_command(host, *remote: str, options: tuple[str, ...] = ()) -> list[str]:
    """A new SSH session to the host as Ansible makes it (key, user, known hosts), never a shared master."""
    v = inventory_vars(host)
    key = v.get("ansible_ssh_private_key_file") or v.get("ansible_private_key_file")
    # ssh keeps the first value of each option: these come before the inventory's own.
    command = ["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=5"]
    command += ["-o", "ControlMaster=no", "-o", "ControlPath=none"]
    command += [*options, *shlex.split(v.get("ansible_ssh_common_args", ""))]
    if key:
        command += ["-i", key]
    command += ["-p", str(v.get("ansible_port") or 22), f"{v.get('ansible_user', 'root')}@{host_address(host)}"]
    return [*command, *remote]


@functools.cache
def control_node_address(host) -> str:
    """The address the host sees the control node's SSH sessions come from."""
    return subprocess.check_output(ssh_command(host, "printenv SSH_CONNECTION"), text=True).split()[0]
