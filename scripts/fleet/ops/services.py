"""The fleet's services: which group runs which systemd unit, with names from the inventory or the roles.

A role variable set in the inventory wins; otherwise the role's own default
(roles/<role>/defaults/main.yml) applies, so the CLI and the roles cannot drift apart.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any

import yaml

from fleet.errors import FleetError
from fleet.ops.inventory import REPO, TEMPLATE, Host

_REFERENCE = re.compile(r"^{{\s*(\w+)\s*}}$|{{\s*(\w+)\s*}}")


@dataclass(frozen=True)
class Service:
    """One tier's service as `fleet` checks it."""

    name: str  # what users type: `fleet logs redis`
    group: str  # the inventory group that runs it
    aliases: tuple[str, ...] = ()


SERVICES: tuple[Service, ...] = (
    Service("nginx", "loadbalancers"),
    Service("app", "app", ("fastapi-fleet",)),
    Service("postgresql", "postgres", ("postgres",)),
    Service("redis", "redis", ("redis-server",)),
)


def find_service(name: str) -> Service | None:
    return next((s for s in SERVICES if name == s.name or name in s.aliases), None)


@functools.cache
def role_defaults(role: str) -> dict[str, Any]:
    path = REPO / "roles" / role / "defaults" / "main.yml"
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except OSError as exc:
        raise FleetError(f"cannot read the {role} role's defaults: {exc}") from None
    return data if isinstance(data, dict) else {}


def setting(host: Host, role: str, name: str) -> str:
    """A role variable for this host: the inventory's literal value, else the role default.

    Only plain references (`/opt/{{ app_name }}`) are resolved, through the same lookup;
    anything else that is a template is an error rather than a guess.
    """
    if name in host.variables:
        value = host.literal(name)
    else:
        value = role_defaults(role).get(name)
        if value is None:
            raise FleetError(f"the {role} role has no default for {name}")
    text = str(value)

    def substitute(match: re.Match[str]) -> str:
        return setting(host, role, match.group(1) or match.group(2))

    resolved = _REFERENCE.sub(substitute, text)
    if TEMPLATE.search(resolved):
        raise FleetError(f"host {host.name}: {name} is {text!r}, a template fleet cannot evaluate; set it literally")
    return resolved


def unit_name(host: Host, service: Service) -> str:
    """The systemd unit (or journal pattern) of a service on this host."""
    if service.name == "nginx":
        return "nginx.service"
    if service.name == "app":
        return f"{setting(host, 'app', 'app_name')}.service"
    if service.name == "redis":
        return "redis-server.service"
    # Debian runs each cluster as postgresql@<version>-<cluster>; the umbrella `postgresql`
    # unit is active even when every cluster is dead. The version is found on the host.
    return f"postgresql@*-{setting(host, 'postgresql', 'postgresql_cluster')}.service"


def services_of(host: Host) -> list[Service]:
    return [s for s in SERVICES if s.group in host.groups]


def app_url(host: Host, path: str) -> str:
    """The app at the address it is bound to: app_listen_address, else the private address (asked from the host)."""
    listen = host.text("app_listen_address", "") or host.private_address
    listen = f"[{listen}]" if ":" in listen else listen
    return f"http://{listen}:{setting(host, 'app', 'app_port')}{path}"
