"""Where each fleet host is reached by the other tiers: the one place that decides it.

Every address a role writes (upstreams, pg_hba, bind and listen addresses, firewall
sources, the app's database and Redis hosts, trusted proxies) comes from these filters:
a host's private address is its ``fleet_address`` if the inventory sets one, else its
``ansible_host``; it must be an IP address (names would make every tier depend on DNS).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from typing import Any

from ansible.errors import AnsibleFilterError

DOCUMENTATION = """
name: fleet_address
short_description: The validated private address of an inventory host
description: A host's fleet_address, else its ansible_host; an error unless it is an IP address.
"""


def _address_of(host: str, hostvars: Mapping[str, Any]) -> str:
    if host not in hostvars:
        raise AnsibleFilterError(f"fleet_address: {host!r} is not a host of this inventory")
    variables = hostvars[host]
    for name in ("fleet_address", "ansible_host"):
        value = variables.get(name)
        if value is None or str(value).strip() == "":
            continue
        try:
            return str(ipaddress.ip_address(str(value).strip()))
        except ValueError:
            raise AnsibleFilterError(
                f"host {host}: {name} {str(value)!r} is not an IP address; set fleet_address "
                "to the private IPv4 or IPv6 address the other tiers reach this host at"
            ) from None
    raise AnsibleFilterError(
        f"host {host}: no address; set ansible_host (or fleet_address, the private address the other tiers use)"
    )


def fleet_address(host: str, hostvars: Mapping[str, Any]) -> str:
    """``'db1' | fleet_address(hostvars)`` → the host's private IP address."""
    return _address_of(str(host), hostvars)


def fleet_addresses(hosts: Iterable[str], hostvars: Mapping[str, Any]) -> list[str]:
    """``groups['app'] | fleet_addresses(hostvars)`` → their addresses, in inventory order, without repeats."""
    seen: list[str] = []
    for host in hosts:
        address = _address_of(str(host), hostvars)
        if address not in seen:
            seen.append(address)
    return seen


def fleet_host_cidr(address: str) -> str:
    """``'10.0.0.5' | fleet_host_cidr`` → ``10.0.0.5/32`` (``/128`` for IPv6)."""
    ip = ipaddress.ip_address(str(address))
    return f"{ip}/{ip.max_prefixlen}"


def fleet_url_host(address: str) -> str:
    """An address as the host part of a URL or ``host:port`` (IPv6 in brackets)."""
    text = str(address)
    return f"[{text}]" if ":" in text and not text.startswith("[") else text


class FilterModule:
    """Fleet addressing filters."""

    def filters(self) -> dict[str, Any]:
        return {
            "fleet_address": fleet_address,
            "fleet_addresses": fleet_addresses,
            "fleet_host_cidr": fleet_host_cidr,
            "fleet_url_host": fleet_url_host,
        }
