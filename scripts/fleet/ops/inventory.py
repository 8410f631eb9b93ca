"""Hosts, their groups and variables, read through Ansible's public `ansible-inventory --list`.

Ansible parses the inventory (YAML, INI, plugins, group_vars, host_vars, vault); this
module only reads its JSON. Variables come untemplated: the ones fleet needs must be
literal values, and a template among them is refused with a clear error.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shlex
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from fleet.errors import FleetError

#: The repository the tooling runs from: its ansible.cfg makes the lab the default inventory.
REPO = Path(__file__).resolve().parents[3]
TEMPLATE = re.compile(r"{{|{%")


@dataclass(frozen=True)
class Host:
    """One inventory host: how to reach it over SSH, its groups and its (untemplated) variables."""

    name: str
    groups: tuple[str, ...]
    variables: Mapping[str, object] = field(repr=False, compare=False)

    def literal(self, name: str, default: object = None) -> object:
        """A variable's value; an error when it is a Jinja template fleet cannot evaluate."""
        value = self.variables.get(name, default)
        if isinstance(value, str) and TEMPLATE.search(value):
            raise FleetError(
                f"host {self.name}: {name} is a template ({value!r}); fleet reads the inventory with "
                "`ansible-inventory --list`, which does not template: give it a literal value"
            )
        return value

    def text(self, name: str, default: str) -> str:
        value = self.literal(name, default)
        return default if value is None else str(value)

    @property
    def address(self) -> str:
        """Where the control node reaches the host (ansible_host, else its name)."""
        return self.text("ansible_host", self.name)

    @property
    def port(self) -> int:
        value = self.literal("ansible_port", self.literal("ansible_ssh_port", 22))
        try:
            return int(str(value))
        except ValueError:
            raise FleetError(f"host {self.name}: ansible_port {value!r} is not a number") from None

    @property
    def user(self) -> str | None:
        value = self.literal("ansible_user", self.literal("ansible_ssh_user"))
        return None if value is None else str(value)

    @property
    def become(self) -> bool:
        """Whether remote commands that need root go through `sudo -n` (ansible_become, not root)."""
        return _truthy(self.literal("ansible_become", False)) and self.user not in (None, "root")

    @property
    def ssh_options(self) -> dict[str, list[str]]:
        """`-o Key=Value` options of ansible_ssh_common_args and ansible_ssh_extra_args (keys lower-cased)."""
        return parse_ssh_options(
            " ".join(self.text(name, "") for name in ("ansible_ssh_common_args", "ansible_ssh_extra_args"))
        )

    @property
    def key_file(self) -> str | None:
        value = self.literal("ansible_ssh_private_key_file", self.literal("ansible_private_key_file"))
        if value is None:
            identity = self.ssh_options.get("identityfile")
            value = identity[0] if identity else None
        return None if value is None else str(Path(str(value)).expanduser())

    @property
    def known_hosts_files(self) -> list[str]:
        """The inventory's UserKnownHostsFile entries (each may list several files)."""
        files = [word for value in self.ssh_options.get("userknownhostsfile", []) for word in value.split()]
        return [str(Path(f).expanduser()) for f in files]

    def check_connection(self) -> None:
        """Fail before any host is contacted when a connection setting is unusable."""
        _ = (self.address, self.port, self.user, self.become, self.key_file, self.known_hosts_files)

    @property
    def private_address(self) -> str:
        """The address the tiers (and the app's bind) use: fleet_address, else ansible_host."""
        for name in ("fleet_address", "ansible_host"):
            value = self.literal(name)
            if value is not None and str(value).strip():
                try:
                    return str(ipaddress.ip_address(str(value).strip()))
                except ValueError:
                    raise FleetError(f"host {self.name}: {name} {value!r} is not an IP address") from None
        raise FleetError(f"host {self.name}: no address; set ansible_host (or fleet_address)")


def _truthy(value: object) -> bool:
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def parse_ssh_options(args: str) -> dict[str, list[str]]:
    """`-o Key=Value`, `-oKey=Value` and `-o 'Key Value'` from an ssh argument string."""
    try:
        words = shlex.split(args)
    except ValueError as exc:
        raise FleetError(f"cannot parse ssh arguments {args!r}: {exc}") from None
    options: dict[str, list[str]] = {}
    pending = False
    for word in words:
        if pending or word.startswith("-o"):
            text = word if pending else word[2:]
            pending = text == ""
            if pending:
                continue
            key, _, value = text.partition("=") if "=" in text else text.partition(" ")
            options.setdefault(key.strip().lower(), []).append(value.strip())
    return options


@dataclass(frozen=True)
class InventorySource:
    """Which inventory to read and how to open its vault."""

    path: str | None = None
    vault_password_file: str | None = None
    ask_vault_pass: bool = False

    def command(self, pattern: str) -> list[str]:
        command = ["ansible-inventory", "--list", "--limit", pattern]
        if self.path:
            command += ["-i", self.path]
        if self.vault_password_file:
            command += ["--vault-password-file", self.vault_password_file]
        if self.ask_vault_pass:
            command.append("--ask-vault-pass")
        return command


def resolve_source(path: str | None, vault_password_file: str | None, ask_vault_pass: bool = False) -> InventorySource:
    """Check the user's paths before anything runs; relative paths are taken from the current directory."""
    if path is not None:
        if not Path(path).exists():
            raise FleetError(f"inventory {path} does not exist")
        path = str(Path(path).resolve())
    if vault_password_file is not None:
        if not Path(vault_password_file).exists():
            raise FleetError(f"vault password file {vault_password_file} does not exist")
        vault_password_file = str(Path(vault_password_file).resolve())
    return InventorySource(path, vault_password_file, ask_vault_pass)


def parse_inventory(document: Mapping[str, object]) -> list[Host]:
    """Hosts of an `ansible-inventory --list` document, with every group they belong to (nested ones too)."""
    meta = document.get("_meta", {})
    hostvars: Mapping[str, Mapping[str, object]] = meta.get("hostvars", {}) if isinstance(meta, Mapping) else {}
    groups = {name: body for name, body in document.items() if name != "_meta" and isinstance(body, Mapping)}

    def members(group: str, seen: frozenset[str] = frozenset()) -> set[str]:
        body = groups.get(group, {})
        found = set(body.get("hosts", []))
        for child in body.get("children", []):
            if child not in seen:
                found |= members(child, seen | {group})
        return found

    membership: dict[str, set[str]] = {name: set() for name in hostvars}
    for group in groups:
        if group in ("all", "ungrouped"):
            continue
        for host in members(group):
            membership.setdefault(host, set()).add(group)
    return [
        Host(name=name, groups=tuple(sorted(membership.get(name, ()))), variables=dict(hostvars.get(name, {})))
        for name in sorted(set(hostvars) | set(membership))
    ]


def load_hosts(source: InventorySource, pattern: str = "all") -> list[Host]:
    """Hosts matching an Ansible pattern (`all`, `app`, `app:&redis`, `web*`, `app:!app3`)."""
    env = {**os.environ, "ANSIBLE_INVENTORY_UNPARSED_FAILED": "true", "ANSIBLE_FORCE_COLOR": "false"}
    try:
        proc = subprocess.run(  # noqa: S603 - a fixed program, arguments as a list
            source.command(pattern),
            capture_output=True,  # --ask-vault-pass prompts on /dev/tty
            text=True,
            check=False,
            cwd=REPO,
            env=env,
        )
    except FileNotFoundError:
        raise FleetError("ansible-inventory not found (run scripts/setup.sh and use .venv/bin)") from None
    if proc.returncode != 0:
        message = " ".join(line.strip() for line in (proc.stderr or "").splitlines() if "[ERROR]" in line)
        message = (message or (proc.stderr or "").strip() or f"exit code {proc.returncode}").replace("[ERROR]: ", "")
        hint = " (pass --vault-password-file or --ask-vault-pass)" if "vault" in message.lower() else ""
        raise FleetError(f"cannot read inventory {source.path or '(ansible.cfg default)'}: {message}{hint}")
    try:
        hosts = parse_inventory(json.loads(proc.stdout))
    except json.JSONDecodeError as exc:
        raise FleetError(f"ansible-inventory printed something that is not JSON: {exc}") from None
    if not hosts:
        raise FleetError(f"no host of {source.path or 'the default inventory'} matches {pattern!r}")
    for host in hosts:
        host.check_connection()
    return hosts
