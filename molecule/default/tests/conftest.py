"""Helpers shared by the scenario's verifiers."""

import json

UNDEFINED = "__undefined__"


def templated_vars(host, defaults: dict) -> dict:
    """Inventory variables as Ansible templates them for this host, in one call.

    Role defaults are not visible to an ad-hoc call, so each name comes with the default
    the test assumes when the inventory does not set it.
    """
    expression = ", ".join(f"'{name}': {name} | default('{UNDEFINED}')" for name in defaults)
    values = host.ansible("debug", json.dumps({"msg": "{{ {" + expression + "} }}"}), check=False)["msg"]
    return {name: default if values[name] == UNDEFINED else values[name] for name, default in defaults.items()}
