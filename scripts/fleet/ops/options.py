"""Options every fleet-wide command shares, and the hosts they select."""

from __future__ import annotations

import argparse
import logging

from fleet.errors import FleetError
from fleet.ops.inventory import Host, load_hosts, resolve_source


def common_options() -> argparse.ArgumentParser:
    """A parent parser: `-i`, vault, `-l`, `--json`, `-v`, `--forks` for status, logs, releases, smoke, run."""
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("inventory and output")
    group.add_argument("-i", "--inventory", help="Ansible inventory (default: ansible.cfg's, the lab: inventories/lab)")
    group.add_argument("--vault-password-file", help="for inventories with vaulted variables")
    group.add_argument("--ask-vault-pass", action="store_true", help="prompt for the vault password")
    group.add_argument(
        "-l", "--limit", default="all", metavar="PATTERN", help="Ansible host pattern (default: all), e.g. app:&redis"
    )
    group.add_argument("--json", action="store_true", help="print JSON instead of tables")
    group.add_argument("-v", "--verbose", action="count", default=0, help="show commands (-vv: SSH debug)")
    group.add_argument("--forks", type=int, default=20, help="hosts handled at once (default 20)")
    return parent


def select_hosts(args: argparse.Namespace, group: str | None = None) -> list[Host]:
    """Hosts of the inventory matching --limit (and, when given, in `group`); bad input fails first."""
    if args.forks < 1:
        raise FleetError("--forks must be at least 1")
    if args.verbose >= 2:
        logging.basicConfig(level=logging.DEBUG, format="%(name)s: %(message)s")
    source = resolve_source(args.inventory, args.vault_password_file, args.ask_vault_pass)
    hosts = load_hosts(source, args.limit)
    if group is None:
        return hosts
    selected = [host for host in hosts if group in host.groups]
    if not selected:
        raise FleetError(f"no host matching {args.limit!r} is in the {group} group")
    return selected
