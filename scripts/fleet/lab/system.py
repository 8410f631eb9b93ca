"""Running host commands and checking the host can run the lab."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

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


INOTIFY_LIMIT = Path("/proc/sys/fs/inotify/max_user_instances")
# What one booted machine holds (systemd, dbus, logind, getty in the machine run as the host's
# root, since machines have no user namespace): measured about 4.6 on Debian 12 images.
INOTIFY_PER_MACHINE = 5


def inotify_instances(uid: int = 0, proc: Path = Path("/proc")) -> int:
    """inotify instances open by the processes of ``uid`` (the kernel's limit counts per user)."""
    count = 0
    for process in proc.iterdir():
        if not process.name.isdigit():
            continue
        try:
            if process.stat().st_uid != uid:
                continue
            fds = list((process / "fd").iterdir())
        except OSError:  # the process ended, or its fds are not ours to read
            continue
        for fd in fds:
            try:
                count += str(fd.readlink()) == "anon_inode:inotify"
            except OSError:  # closed meanwhile
                continue
    return count


def check_inotify_room(machines: int, in_use: int | None = None, limit: int | None = None) -> None:
    """Refuse to boot machines whose systemd would hang for want of inotify instances (a host-wide limit)."""
    if machines <= 0:
        return
    limit = int(INOTIFY_LIMIT.read_text()) if limit is None else limit
    in_use = inotify_instances() if in_use is None else in_use
    needed = machines * INOTIFY_PER_MACHINE
    if in_use + needed > limit:
        raise LabError(
            f"{machines} more machines need about {needed} inotify instances and {in_use} of the host's"
            f" {limit} (fs.inotify.max_user_instances) are in use: their systemd would not finish booting."
            " Take machines down, or raise the limit: sysctl -w fs.inotify.max_user_instances=1024"
        )
