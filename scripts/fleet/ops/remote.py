"""Run commands on many hosts at once with Fabric, checking host keys strictly."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import paramiko
from fabric import Connection

from fleet.ops.inventory import HostConn


@dataclass(frozen=True)
class Outcome:
    """What a command did on one host."""

    host: str
    ok: bool
    stdout: str
    stderr: str


def connect(host: HostConn) -> Connection:
    """A Fabric connection that refuses unknown host keys (no trust on first use)."""
    kwargs: dict[str, object] = {"look_for_keys": host.key_file is None}
    if host.key_file:
        kwargs["key_filename"] = host.key_file
    conn = Connection(host.address, user=host.user, port=host.port, connect_kwargs=kwargs, connect_timeout=10)
    conn.client.set_missing_host_key_policy(paramiko.RejectPolicy())
    if host.known_hosts:
        conn.client.load_host_keys(host.known_hosts)
    return conn


def run_everywhere(hosts: list[HostConn], command: Callable[[HostConn], str], sudo: bool = False) -> list[Outcome]:
    """Run a per-host command on every host in parallel; failures are outcomes, not exceptions."""

    def one(host: HostConn) -> Outcome:
        try:
            with connect(host) as conn:
                runner = conn.sudo if sudo and host.user != "root" else conn.run
                result = runner(command(host), hide=True, warn=True, in_stream=False)
                return Outcome(host.name, result.ok, result.stdout, result.stderr)
        except (OSError, paramiko.SSHException) as exc:
            return Outcome(host.name, False, "", f"cannot connect: {exc}")

    with ThreadPoolExecutor(max_workers=min(16, len(hosts))) as pool:
        return list(pool.map(one, hosts))
