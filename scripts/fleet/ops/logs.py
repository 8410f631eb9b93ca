"""`fleet logs SERVICE`: journal lines from every matching host, each prefixed with its host."""

from __future__ import annotations

import argparse
import json
import re
import shlex
import sys
import threading
import time

from fleet.errors import ExitCode, FleetError
from fleet.ops.inventory import Host
from fleet.ops.options import select_hosts
from fleet.ops.output import exit_code, print_json
from fleet.ops.remote import Result, as_root, run_everywhere, run_one
from fleet.ops.services import SERVICES, find_service, unit_name

_LOCK = threading.Lock()
UNIT_NAME = re.compile(r"[A-Za-z0-9@_.:*\\-]+")


class HostLines:
    """A file-like sink for a remote stream: complete lines go to stdout with the host in front."""

    def __init__(self, host: str, width: int, as_json: bool) -> None:
        self.host = host
        self.width = width
        self.as_json = as_json
        self._partial = ""

    def write(self, data: str) -> int:
        lines = (self._partial + data).split("\n")
        self._partial = lines.pop()
        for line in lines:
            emit(self.host, line, self.width, self.as_json)
        return len(data)

    def flush(self) -> None:
        sys.stdout.flush()


def emit(host: str, line: str, width: int, as_json: bool) -> None:
    with _LOCK:
        if as_json:
            sys.stdout.write(json.dumps({"host": host, "line": line}) + "\n")
        else:
            sys.stdout.write(f"{host:<{width}} | {line}\n")
        sys.stdout.flush()


def journal_command(host: Host, unit: str, lines: int, follow: bool) -> str:
    command = f"journalctl --no-pager --quiet -o short-iso -n {lines} -u {shlex.quote(unit)}"
    return as_root(host, command + (" -f" if follow else ""))


def _targets(args: argparse.Namespace) -> tuple[list[Host], dict[str, str]]:
    if args.lines < 1:
        raise FleetError("-n/--lines must be at least 1")
    service = find_service(args.service)
    if service is None and not UNIT_NAME.fullmatch(args.service):
        known = ", ".join(s.name for s in SERVICES)
        raise FleetError(f"{args.service!r} is neither a fleet service ({known}) nor a systemd unit name")
    hosts = select_hosts(args, group=service.group if service else None)
    units = {host.name: unit_name(host, service) if service else args.service for host in hosts}
    return hosts, units


def follow(hosts: list[Host], units: dict[str, str], args: argparse.Namespace, width: int) -> int:
    """Stream every host's journal until interrupted; a host that drops out is reported, the rest go on."""
    results: list[Result] = []

    def one(host: Host) -> None:
        sink = HostLines(host.name, width, args.json)
        result = run_one(
            host, journal_command(host, units[host.name], args.lines, True), timeout=None, out=sink, err=sink
        )
        results.append(result)
        if not result.reached:
            emit(host.name, f"UNREACHABLE: {result.error}", width, args.json)

    threads = [threading.Thread(target=one, args=(host,), daemon=True) for host in hosts]
    for thread in threads:
        thread.start()
    while any(thread.is_alive() for thread in threads):
        time.sleep(0.2)
    return exit_code(results, any(r.reached and not r.ok for r in results))


def run(args: argparse.Namespace) -> int:
    hosts, units = _targets(args)
    width = max(len(h.name) for h in hosts)
    if args.follow:
        try:
            return follow(hosts, units, args, width)
        except KeyboardInterrupt:
            return ExitCode.OK  # following ends with Ctrl-C; that is not a failure
    results = run_everywhere(
        hosts,
        lambda h: journal_command(h, units[h.name], args.lines, False),
        label="logs",
        forks=args.forks,
        verbose=args.verbose,
    )
    if args.json:
        print_json(
            {
                "service": args.service,
                "hosts": [
                    {
                        "host": r.host,
                        "unit": units[r.host],
                        "lines": r.stdout.splitlines(),
                        "error": r.error or (r.stderr.strip() or None),
                    }
                    for r in results
                ],
            }
        )
    else:
        for r in results:
            for line in r.stdout.splitlines():
                emit(r.host, line, width, False)
            if not r.reached:
                emit(r.host, f"UNREACHABLE: {r.error}", width, False)
            elif not r.ok:
                emit(r.host, f"journalctl failed (exit {r.exit_code}): {r.stderr.strip()}", width, False)
            elif not r.stdout.strip():
                emit(r.host, f"(no journal lines for {units[r.host]})", width, False)
    return exit_code(results, any(r.reached and not r.ok for r in results))


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    names = ", ".join(s.name for s in SERVICES)
    parser = sub.add_parser(
        "logs",
        parents=[common],
        help="journal lines of a service from every matching host, prefixed with the host",
        description=f"SERVICE is a fleet service ({names}: read on the hosts of its group) or any systemd unit "
        "(read on every host matching -l). -f follows until Ctrl-C.",
    )
    parser.add_argument("service", metavar="SERVICE")
    parser.add_argument("-n", "--lines", type=int, default=50, help="lines per host (default 50)")
    parser.add_argument("-f", "--follow", action="store_true", help="keep printing new lines")
    parser.set_defaults(handler=run)
