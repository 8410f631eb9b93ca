"""One lab machine: an overlay root, its identity, and a booted systemd-nspawn container."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import resource
import signal
import subprocess
import time
import uuid
from pathlib import Path

from fleet.lab.config import LAB_USER, LabConfig
from fleet.lab.errors import LabError
from fleet.lab.system import run, succeeds

NSPAWN_ENV = {"SYSTEMD_NSPAWN_API_VFS_WRITABLE": "network"}
# Capabilities added to nspawn's default set. CAP_NET_ADMIN lets a machine load its own
# nftables ruleset (the common role's firewall) and change its interfaces: nspawn drops it
# unless it creates the network itself, and it acts only on the machine's own network
# namespace, never on the host's.
CAPABILITIES = ("CAP_NET_ADMIN",)
# systemd's own hard open-file limit on a real host (services may raise theirs up to it).
NOFILE_CEILING = 524288
# Each machine gets its own cgroup subtree under this name in every mounted hierarchy, so one
# machine's systemd never sees (or kills) another machine's units.
LAB_CGROUP = "fastapi-fleet-lab"
CGROUP_HIERARCHIES = (Path("/sys/fs/cgroup/systemd"), Path("/sys/fs/cgroup/unified"), Path("/sys/fs/cgroup"))


class MachinePaths:
    """Where a machine's files live under the lab's state directory."""

    def __init__(self, cfg: LabConfig, name: str) -> None:
        self.base = cfg.machines_dir / name
        self.upper = self.base / "upper"
        self.work = self.base / "work"
        self.root = self.base / "root"
        self.log = self.base / "console.log"


def mounted_under(path: Path) -> list[Path]:
    """Mount points at or below a path, deepest first (so they unmount in order)."""
    prefix = str(path.resolve())
    points: list[Path] = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if point == prefix or point.startswith(prefix + "/"):
            points.append(Path(point))
    return sorted(points, key=lambda p: len(p.parts), reverse=True)


def mount_root(paths: MachinePaths, image: Path) -> None:
    """Mount the copy-on-write root: the cached image below, the machine's own changes above."""
    for directory in (paths.upper, paths.work, paths.root):
        directory.mkdir(parents=True, exist_ok=True)
    if paths.root.resolve() in mounted_under(paths.root):
        return
    options = f"lowerdir={image},upperdir={paths.upper},workdir={paths.work}"
    run(["mount", "-t", "overlay", "overlay", "-o", options, str(paths.root)])


def seed_identity(paths: MachinePaths, name: str, address: ipaddress.IPv4Address, public_key: str) -> str:
    """Hostname, machine-id, DNS, SSH host keys and the lab key; return the host's ed25519 public key."""
    root = paths.root
    (root / "etc/hostname").write_text(name + "\n")
    (root / "etc/hosts").write_text(f"127.0.0.1 localhost\n{address} {name}\n::1 localhost ip6-localhost\n")
    machine_id = root / "etc/machine-id"
    if not machine_id.read_text().strip():
        machine_id.write_text(uuid.uuid4().hex + "\n")
    (root / "etc/resolv.conf").unlink(missing_ok=True)
    (root / "etc/resolv.conf").write_text(_host_resolv_conf())
    if not (root / "etc/ssh/ssh_host_ed25519_key").exists():
        run(["ssh-keygen", "-A", "-f", str(root)])
    ssh_dir = root / "root/.ssh"
    ssh_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    authorized = ssh_dir / "authorized_keys"
    authorized.write_text(public_key.strip() + "\n")
    authorized.chmod(0o600)
    return " ".join((root / "etc/ssh/ssh_host_ed25519_key.pub").read_text().split()[:2])


def _host_resolv_conf() -> str:
    """The host's resolvers, skipping a loopback stub that a namespace cannot reach."""
    for candidate in (Path("/etc/resolv.conf"), Path("/run/systemd/resolve/resolv.conf")):
        if candidate.exists():
            text = candidate.read_text()
            servers = [line.split()[1] for line in text.splitlines() if line.startswith("nameserver ")]
            if servers and not all(server.startswith("127.") for server in servers):
                return text
    raise LabError("no usable DNS resolver in the host's /etc/resolv.conf (only a loopback stub)")


def cgroup_dirs(name: str | None = None) -> list[Path]:
    """The machine's cgroup directory in each hierarchy (or the lab's parent when name is None)."""
    roots = [root for root in CGROUP_HIERARCHIES if (root / "cgroup.procs").exists()]
    return [root / LAB_CGROUP / name if name else root / LAB_CGROUP for root in roots]


def remove_cgroups(name: str | None = None) -> None:
    """Remove a machine's (now empty) cgroup subtrees, deepest first; with no name, the lab's parent."""
    for top in cgroup_dirs(name):
        if not top.is_dir():
            continue
        for directory in sorted((d for d in top.rglob("*") if d.is_dir()), key=lambda d: len(d.parts), reverse=True):
            with contextlib.suppress(OSError):
                directory.rmdir()
        with contextlib.suppress(OSError):
            top.rmdir()


def nspawn_command(paths: MachinePaths, name: str) -> list[str]:
    """The systemd-nspawn command line that boots a machine in its own network namespace."""
    return [
        "systemd-nspawn",
        "--keep-unit",
        "--register=no",
        "--console=passive",
        "--boot",
        "--directory",
        str(paths.root),
        "--machine",
        name,
        "--hostname",
        name,
        f"--network-namespace-path=/run/netns/{name}",
        *(f"--capability={capability}" for capability in CAPABILITIES),
    ]


def boot(paths: MachinePaths, name: str) -> int:
    """Start systemd-nspawn detached, in the machine's network namespace; return its PID."""
    args = nspawn_command(paths, name)
    cgroups = cgroup_dirs(name)
    for directory in cgroups:
        directory.mkdir(parents=True, exist_ok=True)

    def prepare() -> None:
        # In the child, before exec: nspawn builds the container's cgroups below its own.
        _raise_nofile()
        for directory in cgroups:
            (directory / "cgroup.procs").write_text(str(os.getpid()))

    with open(paths.log, "ab") as log:
        proc = subprocess.Popen(  # noqa: S603 - fixed argument list
            args,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **NSPAWN_ENV},
            start_new_session=True,
            preexec_fn=prepare,
        )
    return proc.pid


def _raise_nofile() -> None:
    """Give the container the open-file ceiling of a real systemd host where the caller may.

    Without CAP_SYS_RESOURCE (some sandboxes) the caller's hard limit stays the ceiling.
    """
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE_CEILING, NOFILE_CEILING))


def nspawn_pids(paths: MachinePaths) -> list[int]:
    """PIDs of systemd-nspawn processes running this machine's root (found even without state)."""
    root = str(paths.root)
    pids: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"systemd-nspawn") and root.encode() in argv:
            pids.append(int(entry.name))
    return pids


def rooted_pids(paths: MachinePaths) -> list[int]:
    """PIDs running on the machine's overlay root: its processes, even if nspawn died.

    Inside the container the root link reads "/", so match the root mount's upperdir instead
    (only processes in another mount namespace are read).
    """
    marker = f"upperdir={paths.upper},"
    own_ns = Path("/proc/self/ns/mnt").readlink()
    pids: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "ns/mnt").readlink() == own_ns:
                continue
            lines = (entry / "mountinfo").read_text().splitlines()
        except OSError:
            continue
        if any(line.split()[4] == "/" and marker in line + "," for line in lines):
            pids.append(int(entry.name))
    return pids


def _alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


def stop(paths_list: list[MachinePaths], timeout: float = 10.0) -> None:
    """Stop machines that are about to be removed: SIGKILL each container's init.

    Killing the PID namespace's init ends every process in it at once (processes are found
    by their root directory, so an orphaned container whose nspawn died is found too); nspawn then exits
    by itself (and is killed too if it lingers). Nothing inside is kept, so no orderly
    shutdown is needed.
    """
    pids = [pid for paths in paths_list for pid in nspawn_pids(paths)]
    inside = [pid for paths in paths_list for pid in rooted_pids(paths)]
    for pid in inside:
        _signal(pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(_alive(pid) for pid in pids + inside):
        time.sleep(0.1)
    for pid in pids:
        _signal(pid, signal.SIGKILL)
    # A killed process leaves its cgroup only once the kernel has torn it down: wait for every
    # process of the machines (and their cgroups) to be gone, or the cgroups cannot be removed.
    names = [paths.base.name for paths in paths_list]
    while time.monotonic() < deadline and (
        any(_alive(pid) for pid in pids + inside) or any(cgroup_pids(name) for name in names)
    ):
        for pid in (pid for name in names for pid in cgroup_pids(name)):
            _signal(pid, signal.SIGKILL)
        time.sleep(0.05)


def cgroup_pids(name: str) -> list[int]:
    """PIDs still in the machine's cgroup subtrees (any hierarchy)."""
    pids: set[int] = set()
    for top in cgroup_dirs(name):
        if not top.is_dir():
            continue
        for procs in top.rglob("cgroup.procs"):
            with contextlib.suppress(OSError, ValueError):
                pids.update(int(line) for line in procs.read_text().split())
    return sorted(pids)


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def unmount(paths: MachinePaths) -> None:
    """Unmount everything below the machine's directory (lazily if something still holds it)."""
    for point in mounted_under(paths.base):
        if not succeeds(["umount", str(point)]):
            run(["umount", "--lazy", str(point)])


def ssh_base(cfg: LabConfig, address: str) -> list[str]:
    """The ssh command line that reaches a machine with the lab key and known hosts."""
    return [
        "ssh",
        "-i",
        str(cfg.private_key),
        "-o",
        f"UserKnownHostsFile={cfg.known_hosts}",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "BatchMode=yes",
        "-o",
        "ConnectTimeout=3",
        "-o",
        "LogLevel=ERROR",
        f"{LAB_USER}@{address}",
    ]


def wait_ready(cfg: LabConfig, name: str, address: str, timeout: float = 120.0) -> None:
    """Wait until sshd answers and systemd has finished booting (running or degraded)."""
    deadline = time.monotonic() + timeout
    command = [*ssh_base(cfg, address), "systemctl", "is-system-running", "--wait"]
    last = ""
    while time.monotonic() < deadline:
        proc = subprocess.run(command, capture_output=True, text=True, check=False, timeout=timeout)  # noqa: S603
        last = (proc.stdout + proc.stderr).strip()
        if last.splitlines() and last.splitlines()[-1] in ("running", "degraded"):
            return
        time.sleep(0.5)
    raise LabError(f"machine {name} ({address}) did not finish booting in {timeout:.0f} s: {last}")
