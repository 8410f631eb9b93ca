#!/usr/bin/python3
"""Abort nginx's connections to an app server that has vanished, so its requests move on.

nginx notices a dead upstream only through a request: a refused connect fails at once, a
connect to a vanished host after proxy_connect_timeout, but a request already sent on an
established (kept-alive) connection waits for proxy_read_timeout or for TCP to give up,
tens of seconds. This watcher probes each upstream ``ADDRESS:PORT`` with a TCP connect every
INTERVAL seconds. A host that answers neither SYN-ACK nor RST for MISSES probes in a row is
gone (link down, machine off): every established connection of this host to it is aborted
(``ss -K``, the kernel's SOCK_DESTROY), so nginx sees an error on each request in flight and
sends the idempotent ones to the next server (``proxy_next_upstream error``). A host that
refuses (service stopped) or answers slowly is left to nginx. Only the Python standard
library and iproute2's ``ss``; needs CAP_NET_ADMIN.
"""

from __future__ import annotations

import argparse
import errno
import ipaddress
import logging
import select
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field

OK, REFUSED, TIMEOUT = "ok", "refused", "timeout"
# Errors that mean nothing answered (no SYN-ACK, no RST): the host or its network is gone.
UNANSWERED = frozenset({errno.ETIMEDOUT, errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EHOSTDOWN})
LOG = logging.getLogger("upstream-watch")


@dataclass(frozen=True)
class Target:
    """One upstream server."""

    address: str
    port: int

    @classmethod
    def parse(cls, text: str) -> Target:
        host, sep, port = text.rpartition(":")
        try:
            if not sep or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(port)
            return cls(str(ipaddress.ip_address(host.strip("[]"))), int(port))
        except ValueError:
            raise ValueError(f"{text!r}: expected ADDRESS:PORT, an IP address and a port 1-65535") from None

    @property
    def family(self) -> socket.AddressFamily:
        return socket.AF_INET6 if ":" in self.address else socket.AF_INET

    def __str__(self) -> str:
        return f"[{self.address}]:{self.port}" if ":" in self.address else f"{self.address}:{self.port}"


def probe_all(targets: list[Target], timeout: float) -> dict[Target, str]:
    """One TCP connect to each target at once: OK (SYN-ACK), REFUSED (RST, an error) or TIMEOUT (no answer)."""
    outcomes: dict[Target, str] = {}
    pending: dict[socket.socket, Target] = {}
    try:
        for target in targets:
            sock = socket.socket(target.family, socket.SOCK_STREAM)
            sock.setblocking(False)
            code = sock.connect_ex((target.address, target.port))
            if code == errno.EINPROGRESS:
                pending[sock] = target
                continue
            outcomes[target] = OK if code == 0 else TIMEOUT if code in UNANSWERED else REFUSED
            sock.close()
        deadline = time.monotonic() + timeout
        waiting = list(pending)
        while waiting and (left := deadline - time.monotonic()) > 0:
            _, writable, _ = select.select([], waiting, [], left)
            waiting = [sock for sock in waiting if sock not in writable]
        for sock, target in pending.items():
            # Decided by each socket's state, not by whether select woke in time: a watcher
            # that was not scheduled for a while must not take a late wake-up for a lost host.
            error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if error:
                outcomes[target] = TIMEOUT if error in UNANSWERED else REFUSED
                continue
            try:
                sock.getpeername()
            except OSError:
                outcomes[target] = TIMEOUT  # no answer yet
            else:
                outcomes[target] = OK
    finally:
        for sock in pending:
            sock.close()
    return outcomes


def abort_connections(target: Target) -> str:
    """Abort every established TCP connection of this host to the target (its requests fail at once)."""
    destination = f"[{target.address}]" if target.family == socket.AF_INET6 else target.address
    command = ["/usr/bin/ss", "--kill", "--tcp", "--numeric", "state", "established"]
    command += ["dst", destination, "dport", "=", f":{target.port}"]
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=5)  # noqa: S603
    if done.returncode != 0:
        return f"ss failed: {done.stderr.strip()}"
    aborted = max(0, len(done.stdout.splitlines()) - 1)
    return f"{aborted} connection(s) aborted"


@dataclass
class Watch:
    """The state of one target: consecutive misses, and whether it is considered gone."""

    target: Target
    misses_to_gone: int
    misses: int = 0
    gone: bool = False
    events: list[str] = field(default_factory=list)

    def observe(self, outcome: str) -> bool:
        """Record one probe; True when the target's connections must be aborted now."""
        if outcome == TIMEOUT:
            self.misses += 1
            if self.misses >= self.misses_to_gone:
                if not self.gone:
                    self.gone = True
                    self.events.append(f"{self.target} gone: no answer to {self.misses} connects in a row")
                # Every probe while gone: nginx may have reused or opened connections meanwhile.
                return True
            return False
        if self.gone:
            self.events.append(f"{self.target} answers again ({outcome})")
        self.misses = 0
        self.gone = False
        return False


def run(targets: list[Target], interval: float, misses: int, cycles: int | None = None) -> None:
    """Probe every target each interval (all at once); forever unless cycles is given."""
    watches = [Watch(target, misses) for target in targets]
    done = 0
    while cycles is None or done < cycles:
        started = time.monotonic()
        outcomes = probe_all(targets, interval)
        for watch in watches:
            if watch.observe(outcomes[watch.target]):
                LOG.warning("%s: %s", watch.target, abort_connections(watch.target))
            for event in watch.events:
                LOG.warning("%s", event)
            watch.events.clear()
        done += 1
        time.sleep(max(0.0, interval - (time.monotonic() - started)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("targets", nargs="+", metavar="ADDRESS:PORT")
    parser.add_argument("--interval", type=float, default=0.25, help="seconds between probes, also a probe's timeout")
    parser.add_argument("--misses", type=int, default=3, help="unanswered probes in a row that make a host gone")
    args = parser.parse_args(argv)
    try:
        targets = [Target.parse(text) for text in args.targets]
    except ValueError as exc:
        parser.error(str(exc))
    if not 0.01 <= args.interval <= 60 or args.misses < 1:
        parser.error("--interval must be within 0.01..60 seconds and --misses at least 1")
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    LOG.info(
        "watching %s every %.2fs, gone after %d unanswered connects",
        ", ".join(map(str, targets)),
        args.interval,
        args.misses,
    )
    run(targets, args.interval, args.misses)
    return 0


if __name__ == "__main__":
    sys.exit(main())
