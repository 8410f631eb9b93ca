"""What Prometheus scrapes, generated from the inventory's groups (no hand-listed host).

``fleet_scrape_targets`` turns the hosts of a group into Prometheus ``static_configs``: one
target per host at its fleet address (``fleet_network.py`` decides it) and the port the host
itself uses (its own value of the port variable, else the role default), labelled
``instance=<inventory name>`` so alerts name hosts, not addresses.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ansible.errors import AnsibleFilterError

DOCUMENTATION = """
name: fleet_scrape_targets
short_description: Prometheus static_configs for the hosts of an inventory group
description: One target per host, at its fleet address and its own port, labelled with its inventory name.
"""


def _network() -> Any:  # noqa: ANN401 - the sibling filter module
    # The one place that decides addresses, loaded from beside this file.
    spec = importlib.util.spec_from_file_location("fleet_network", Path(__file__).with_name("fleet_network.py"))
    if spec is None or spec.loader is None:  # pragma: no cover - shipped together
        raise AnsibleFilterError("fleet_scrape_targets: fleet_network.py is missing beside fleet_monitoring.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.fleet_address


def _port(host: str, hostvars: Mapping[str, Any], port_var: str, default: int) -> int:
    value = hostvars[host].get(port_var, default) if port_var else default
    try:
        port = int(value)
    except (TypeError, ValueError):
        raise AnsibleFilterError(f"host {host}: {port_var} = {value!r} is not a port") from None
    if not 1 <= port <= 65535:
        raise AnsibleFilterError(f"host {host}: {port_var} = {port} is not a port from 1 to 65535")
    return port


def scrape_targets(
    hosts: Iterable[str],
    hostvars: Mapping[str, Any],
    port_var: str = "",
    default_port: int = 0,
    url: str = "",
) -> list[dict[str, Any]]:
    """``groups['redis'] | fleet_scrape_targets(hostvars, 'exporters_redis_port', 9121)``.

    With ``url`` (e.g. ``'https://{address}:{port}/health'``) the target is that URL, for
    probes through the blackbox exporter; otherwise ``address:port``.
    """
    address_of = _network()
    configs = []
    seen: set[str] = set()
    for host in hosts:
        name = str(host)
        if name in seen:
            continue
        seen.add(name)
        address = address_of(name, hostvars)
        host_part = f"[{address}]" if ":" in address else address
        port = _port(name, hostvars, port_var, int(default_port))
        target = url.format(address=host_part, port=port) if url else f"{host_part}:{port}"
        configs.append({"targets": [target], "labels": {"instance": name}})
    return configs


class FilterModule:
    """Monitoring filters."""

    def filters(self) -> dict[str, Any]:
        return {"fleet_scrape_targets": scrape_targets}
