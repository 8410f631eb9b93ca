"""A package cache the lab machines share: Debian's apt-cacher-ng on the bridge address.

Every machine installs the same Debian packages; with the cache each file crosses the
network once per lab (and the cache outlives the machines, under the lab directory), so
converges get faster without changing what gets installed. Without apt-cacher-ng on the
host the machines use the mirror directly.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import time
from pathlib import Path

from fleet.lab.config import LabConfig
from fleet.lab.system import run

PORT = 3142
PROXY_CONF = Path("etc/apt/apt.conf.d/00fleet-lab-proxy")


def cache_dir(cfg: LabConfig) -> Path:
    return cfg.state_dir / "apt-cache"


def _pid_file(cfg: LabConfig) -> Path:
    return cache_dir(cfg) / "run" / "pid"


def _listening(address: str, port: int = PORT) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((address, port), timeout=0.5):
        return True
    return False


def _own_pid(cfg: LabConfig) -> int | None:
    """The PID of the cache this lab started, if it still runs."""
    try:
        pid = int(_pid_file(cfg).read_text().split()[0])
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError, IndexError):
        return None
    return pid if b"apt-cacher-ng" in cmdline else None


def ensure_running(cfg: LabConfig) -> str | None:
    """Start the cache on the bridge address when needed; return the proxy URL, or None without one."""
    address = str(cfg.gateway)
    if _listening(address):
        return f"http://{address}:{PORT}/"
    binary = shutil.which("apt-cacher-ng")
    if binary is None:
        return None
    base = cache_dir(cfg)
    for sub in ("cache", "log", "run", "conf"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    # A plain caching proxy: no remapping of Debian's URLs to other backends (the package's
    # configuration remaps them to a backend list that may be empty), files keyed by the
    # machines' own mirror URLs.
    (base / "conf" / "acng.conf").write_text("SupportDir: /usr/lib/apt-cacher-ng\nExThreshold: 4\n")
    run(
        [
            binary,
            "-c",
            str(base / "conf"),
            "ForeGround=0",
            f"CacheDir={base / 'cache'}",
            f"LogDir={base / 'log'}",
            f"PidFile={_pid_file(cfg)}",
            f"SocketPath={base / 'run' / 'socket'}",
            f"BindAddress={address}",
            f"Port={PORT}",
        ]
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if _listening(address):
            return f"http://{address}:{PORT}/"
        time.sleep(0.1)
    return None


def stop(cfg: LabConfig) -> None:
    """Stop the cache this lab started (the cached files stay for the next lab)."""
    pid = _own_pid(cfg)
    if pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    _pid_file(cfg).unlink(missing_ok=True)


def configure_machine(root: Path, proxy: str | None) -> None:
    """Point a machine's apt at the cache (plain-HTTP sources only; HTTPS ones go direct)."""
    conf = root / PROXY_CONF
    if proxy is None:
        conf.unlink(missing_ok=True)
        return
    conf.write_text(f'Acquire::http::Proxy "{proxy}";\nAcquire::https::Proxy "DIRECT";\n')
