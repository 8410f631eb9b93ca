"""Lab settings and machine specifications, validated before anything changes."""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass
from pathlib import Path

from fleet.lab.errors import LabError

DISTROS: tuple[str, ...] = ("bookworm", "trixie")
DEFAULT_DISTRO = "bookworm"
DEFAULT_STATE_DIR = Path("/var/lib/fastapi-fleet-lab")
DEFAULT_BRIDGE = "fleetbr0"
DEFAULT_SUBNET = ipaddress.IPv4Network("10.231.0.0/24")
LAB_USER = "root"

_NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,30}[a-z0-9]$")
_IFNAME_RE = re.compile(r"^[a-zA-Z][a-zA-Z0-9_-]{0,14}$")


@dataclass(frozen=True)
class LabConfig:
    """Where the lab keeps its files and which bridge and subnet it uses."""

    state_dir: Path = DEFAULT_STATE_DIR
    bridge: str = DEFAULT_BRIDGE
    subnet: ipaddress.IPv4Network = DEFAULT_SUBNET

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> LabConfig:
        """Read FLEET_LAB_DIR, FLEET_LAB_BRIDGE and FLEET_LAB_SUBNET, with defaults."""
        env = os.environ if environ is None else environ
        bridge = env.get("FLEET_LAB_BRIDGE", DEFAULT_BRIDGE)
        if not _IFNAME_RE.match(bridge):
            raise LabError(f"FLEET_LAB_BRIDGE {bridge!r} is not a valid interface name")
        try:
            subnet = ipaddress.IPv4Network(env.get("FLEET_LAB_SUBNET", str(DEFAULT_SUBNET)))
        except ValueError as exc:
            raise LabError(f"FLEET_LAB_SUBNET: {exc}") from None
        if subnet.prefixlen > 28 or not subnet.is_private:
            raise LabError(f"FLEET_LAB_SUBNET {subnet} must be a private IPv4 subnet of /28 or larger")
        return cls(Path(env.get("FLEET_LAB_DIR", str(DEFAULT_STATE_DIR))), bridge, subnet)

    @property
    def gateway(self) -> ipaddress.IPv4Address:
        """The host's address on the bridge: the subnet's first address."""
        return self.subnet.network_address + 1

    @property
    def images_dir(self) -> Path:
        return self.state_dir / "images"

    @property
    def machines_dir(self) -> Path:
        return self.state_dir / "machines"

    @property
    def ssh_dir(self) -> Path:
        return self.state_dir / "ssh"

    @property
    def private_key(self) -> Path:
        return self.ssh_dir / "id_ed25519"

    @property
    def known_hosts(self) -> Path:
        return self.ssh_dir / "known_hosts"

    @property
    def state_file(self) -> Path:
        return self.state_dir / "state.json"

    def check_address(self, address: ipaddress.IPv4Address) -> None:
        """Refuse addresses outside the subnet or reserved for the network and gateway."""
        if address not in self.subnet:
            raise LabError(f"address {address} is outside the lab subnet {self.subnet}")
        if address in (self.subnet.network_address, self.subnet.broadcast_address, self.gateway):
            raise LabError(f"address {address} is reserved in {self.subnet} (network, gateway or broadcast)")


@dataclass(frozen=True)
class MachineSpec:
    """A machine the user asked for: a name, a Debian release and optionally an address."""

    name: str
    distro: str = DEFAULT_DISTRO
    address: ipaddress.IPv4Address | None = None

    @classmethod
    def parse(cls, text: str) -> MachineSpec:
        """Parse NAME[:DISTRO[:ADDRESS]], e.g. 'web1', 'db1:trixie', 'lb1:bookworm:10.231.0.20'."""
        parts = text.split(":")
        if len(parts) > 3 or not parts[0]:
            raise LabError(f"machine {text!r}: expected NAME[:DISTRO[:ADDRESS]]")
        name = parts[0]
        distro = parts[1] if len(parts) > 1 and parts[1] else DEFAULT_DISTRO
        address = parse_address(parts[2], text) if len(parts) > 2 and parts[2] else None
        return cls.build(name, distro, address)

    @classmethod
    def build(cls, name: str, distro: str, address: ipaddress.IPv4Address | None) -> MachineSpec:
        """Validate the fields one by one, naming the machine in every error."""
        if not _NAME_RE.match(name):
            raise LabError(
                f"machine name {name!r}: use 2-32 characters, lowercase letters, digits and '-', starting with a letter"
            )
        if distro not in DISTROS:
            raise LabError(f"machine {name}: unknown distro {distro!r} (choose from {', '.join(DISTROS)})")
        return cls(name, distro, address)


def parse_address(text: str, context: str) -> ipaddress.IPv4Address:
    """An IPv4 address or a LabError that names where it came from."""
    try:
        return ipaddress.IPv4Address(text)
    except ValueError:
        raise LabError(f"{context}: {text!r} is not an IPv4 address") from None


def check_unique(specs: list[MachineSpec]) -> None:
    """Refuse the same name or address twice in one request."""
    seen_names: set[str] = set()
    seen_addresses: set[ipaddress.IPv4Address] = set()
    for spec in specs:
        if spec.name in seen_names:
            raise LabError(f"machine {spec.name} is named twice")
        seen_names.add(spec.name)
        if spec.address is not None:
            if spec.address in seen_addresses:
                raise LabError(f"address {spec.address} is given to two machines")
            seen_addresses.add(spec.address)
