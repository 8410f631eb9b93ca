"""Helpers shared by the scenario's verifiers."""

import functools
import json
import os
import sys
from pathlib import Path

UNDEFINED = "__undefined__"

# testinfra runs `ansible-inventory` and `ansible` by name: find them in this virtualenv also
# when pytest is started as .venv/bin/pytest without an activated environment.
_BIN = str(Path(sys.executable).parent)
if _BIN not in os.environ.get("PATH", "").split(os.pathsep):
    os.environ["PATH"] = _BIN + os.pathsep + os.environ.get("PATH", "")


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
