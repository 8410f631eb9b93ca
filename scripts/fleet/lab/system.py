"""Running host commands and checking the host can run the lab."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence

from fleet.lab.errors import LabError

REQUIRED_TOOLS: dict[str, str] = {
    "systemd-nspawn": "systemd-container",
    "debootstrap": "debootstrap",
    "ip": "iproute2",
    "iptables": "iptables",
    "ssh": "openssh-client",
    "ssh-keygen": "openssh-client",
    "mount": "mount",
    "umount": "mount",
}


def run(args: Sequence[str], *, check: bool = True, input_text: str | None = None) -> str:
    """Run a command and return its stdout; raise LabError with its stderr on failure."""
    proc = subprocess.run(  # noqa: S603 - arguments are built by the lab, never a shell
        list(args), capture_output=True, text=True, input=input_text, check=False
    )
    if check and proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip()
        raise LabError(f"command failed ({proc.returncode}): {' '.join(args)}: {detail}")
    return proc.stdout


def succeeds(args: Sequence[str]) -> bool:
    """Whether a command exits 0 (output discarded)."""
    return subprocess.run(list(args), capture_output=True, check=False).returncode == 0  # noqa: S603


def require_root() -> None:
    """The lab changes network namespaces, mounts and firewall rules: root only."""
    if os.geteuid() != 0:
        raise LabError("the lab must run as root (it creates namespaces, mounts and NAT rules)")


def missing_tools(tools: dict[str, str] | None = None) -> list[str]:
    """Return 'tool (package)' for every required tool that is not on PATH."""
    wanted = REQUIRED_TOOLS if tools is None else tools
    return [f"{tool} (apt package {pkg})" for tool, pkg in wanted.items() if not shutil.which(tool)]


def require_tools() -> None:
    """Fail with the list of missing tools and the packages that provide them."""
    missing = missing_tools()
    if missing:
        raise LabError("missing tools: " + ", ".join(missing))
