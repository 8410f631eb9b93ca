"""Resolve hosts and their SSH settings from an Ansible inventory, templates and vault included."""

from __future__ import annotations

import functools
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from ansible.inventory.manager import InventoryManager
from ansible.parsing.dataloader import DataLoader
from ansible.parsing.vault import VaultSecret
from ansible.plugins.loader import init_plugin_loader
from ansible.template import Templar
from ansible.vars.manager import VariableManager

from fleet.ops.errors import OpsError

# Services each tier runs, by inventory group.
GROUP_SERVICES: dict[str, str] = {
    "loadbalancers": "nginx",
    "app": "fastapi-fleet",
    "postgres": "postgresql",
    "redis": "redis-server",
}


@dataclass(frozen=True)
class HostConn:
    """How to reach one host over SSH, and which tiers it carries."""

    name: str
    address: str
    port: int
    user: str
    key_file: str | None
    known_hosts: str | None
    groups: tuple[str, ...]

    @property
    def services(self) -> list[str]:
        return [GROUP_SERVICES[g] for g in self.groups if g in GROUP_SERVICES]


def _known_hosts(ssh_args: str) -> str | None:
    for word in shlex.split(ssh_args):
        match = re.match(r"UserKnownHostsFile=(.+)", word)
        if match:
            return match.group(1)
    return None


@functools.cache
def _init_ansible() -> None:
    """Ansible's plugin loader (lookups, vault) is set up once per process."""
    init_plugin_loader()


def load_hosts(source: str, pattern: str = "all", vault_password_file: str | None = None) -> list[HostConn]:
    """Hosts matching an Ansible pattern, with their connection variables fully templated."""
    if not Path(source).exists():
        raise OpsError(f"inventory {source} does not exist")
    _init_ansible()
    loader = DataLoader()
    if vault_password_file:
        secret = Path(vault_password_file).read_bytes().strip()
        loader.set_vault_secrets([("default", VaultSecret(secret))])
    manager = InventoryManager(loader=loader, sources=[source])
    variables = VariableManager(loader=loader, inventory=manager)
    hosts = manager.get_hosts(pattern)
    if not hosts:
        raise OpsError(f"no host in {source} matches {pattern!r}")
    result = []
    for host in hosts:
        hostvars = variables.get_vars(host=host)
        templar = Templar(loader=loader, variables=hostvars)

        def value(
            name: str, default: object = None, *, templar: Templar = templar, hostvars: dict = hostvars
        ) -> object:
            return templar.template(hostvars[name]) if name in hostvars else default

        result.append(
            HostConn(
                name=host.name,
                address=str(value("ansible_host", host.name)),
                port=int(value("ansible_port", 22)),  # type: ignore[arg-type]
                user=str(value("ansible_user", "root")),
                key_file=value("ansible_ssh_private_key_file") or value("ansible_private_key_file"),  # type: ignore[arg-type]
                known_hosts=_known_hosts(str(value("ansible_ssh_common_args", ""))),
                groups=tuple(sorted(g.name for g in host.get_groups() if g.name != "all")),
            )
        )
    return result
