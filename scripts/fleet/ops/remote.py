"""Run commands on many hosts at once over SSH (Fabric), host keys checked strictly.

Host keys are looked up in the inventory's UserKnownHostsFile entries and in the user's
own ~/.ssh/known_hosts; an unknown or changed key refuses the connection. A host that
cannot be reached becomes a result with an error, never an exception.
"""

from __future__ import annotations

import logging
import shlex
import socket
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import invoke
import paramiko
from fabric import Connection
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from fleet.ops.inventory import Host

# Paramiko logs failed handshakes with a traceback from its transport thread; the failure
# is reported per host instead (`-vv` shows paramiko's log).
logging.getLogger("paramiko").addHandler(logging.NullHandler())

CONNECT_TIMEOUT = 10.0
COMMAND_TIMEOUT = 120.0


@dataclass(frozen=True)
class Result:
    """What one command did on one host; `error` is set when the host was not reached."""

    host: str
    exit_code: int | None
    stdout: str
    stderr: str
    error: str | None = None

    @property
    def reached(self) -> bool:
        return self.error is None

    @property
    def ok(self) -> bool:
        return self.error is None and self.exit_code == 0


def connect(host: Host, timeout: float = CONNECT_TIMEOUT) -> Connection:
    """A Fabric connection that refuses unknown host keys (no trust on first use)."""
    kwargs: dict[str, object] = {"look_for_keys": host.key_file is None}
    if host.key_file:
        kwargs["key_filename"] = host.key_file
    conn = Connection(host.address, user=host.user, port=host.port, connect_kwargs=kwargs, connect_timeout=timeout)
    # Fabric trusts unknown keys by default (AutoAddPolicy); fleet never does.
    conn.client.set_missing_host_key_policy(paramiko.RejectPolicy())
    conn.client.load_system_host_keys()  # ~/.ssh/known_hosts; a missing file is fine
    for path in host.known_hosts_files:
        if Path(path).is_file():
            conn.client.load_host_keys(path)
    return conn


def as_root(host: Host, command: str) -> str:
    """The command run through `sudo -n` where the inventory connects as a user that becomes root."""
    return f"sudo -n -- sh -c {shlex.quote(command)}" if host.become else command


def describe(exc: BaseException) -> str:
    """One line for why a host could not be reached."""
    if isinstance(exc, paramiko.BadHostKeyException):
        return f"host key does not match the known_hosts entry for {exc.hostname}: refusing to connect"
    if isinstance(exc, paramiko.SSHException) and "not found in known_hosts" in str(exc):
        return f"{exc}: host key unknown, refusing to connect (add it to known_hosts)"
    if isinstance(exc, paramiko.AuthenticationException):
        return f"authentication failed: {exc}"
    if isinstance(exc, TimeoutError | socket.timeout):
        return "connection timed out"
    if isinstance(exc, invoke.CommandTimedOut):
        return f"command timed out after {exc.timeout}s"
    text = str(exc) or type(exc).__name__
    return f"cannot connect: {text}"


def run_one(
    host: Host,
    command: str,
    *,
    timeout: float | None = COMMAND_TIMEOUT,
    out: IO[str] | None = None,
    err: IO[str] | None = None,
) -> Result:
    """Run a shell command on one host; streams to `out`/`err` when given."""
    try:
        with connect(host) as conn:
            done = conn.run(
                command,
                hide=True,
                warn=True,
                in_stream=False,
                timeout=timeout,
                out_stream=out,
                err_stream=err,
            )
            return Result(host.name, done.exited, done.stdout, done.stderr)
    except (OSError, EOFError, paramiko.SSHException, invoke.CommandTimedOut) as exc:
        return Result(host.name, None, "", "", describe(exc))
    except Exception as exc:  # one host's surprise must not hide the others' results
        return Result(host.name, None, "", "", f"{type(exc).__name__}: {exc}")


@contextmanager
def _progress(label: str, total: int) -> Iterator[Callable[[], None]]:
    console = Console(stderr=True)
    if not console.is_terminal or total < 2:
        yield lambda: None
        return
    columns = (TextColumn(f"[bold]{label}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task(label, total=total)
        yield lambda: progress.advance(task)


def run_everywhere(
    hosts: list[Host],
    command: Callable[[Host], str],
    *,
    label: str = "hosts",
    forks: int = 20,
    timeout: float | None = COMMAND_TIMEOUT,
    verbose: int = 0,
) -> list[Result]:
    """Run a per-host command on every host in parallel; results in the hosts' order."""
    if not hosts:
        return []
    commands = {host.name: command(host) for host in hosts}
    if verbose:
        for host in hosts:
            print(
                f"fleet: {host.name} ({host.user or 'ssh default'}@{host.address}): {commands[host.name]}",
                file=sys.stderr,
            )
    results: dict[str, Result] = {}
    with (
        _progress(label, len(hosts)) as advance,
        ThreadPoolExecutor(max_workers=max(1, min(forks, len(hosts)))) as pool,
    ):
        futures = {pool.submit(run_one, host, commands[host.name], timeout=timeout): host for host in hosts}
        for future in as_completed(futures):
            results[futures[future].name] = future.result()
            advance()
    return [results[host.name] for host in hosts]
