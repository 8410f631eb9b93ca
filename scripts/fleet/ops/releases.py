"""`fleet releases`: the releases installed on each app host, and which one is current."""

from __future__ import annotations

import argparse
import shlex
from dataclasses import dataclass, field
from datetime import UTC, datetime

from rich.table import Table

from fleet.ops.inventory import Host
from fleet.ops.options import select_hosts
from fleet.ops.output import console, exit_code, mark, print_json, report_unreachable
from fleet.ops.remote import Result, run_everywhere
from fleet.ops.services import setting


def releases_script(host: Host) -> str:
    root = setting(host, "app", "app_root")
    return (
        f"printf 'current\\t%s\\n' \"$(readlink {shlex.quote(root + '/current')} 2>/dev/null)\"\n"
        f"find {shlex.quote(root + '/releases')} -mindepth 1 -maxdepth 1 -type d -printf 'release\\t%T@\\t%f\\n'"
        " 2>/dev/null; true\n"
    )


@dataclass
class HostReleases:
    host: str
    reachable: bool
    error: str | None = None
    current: str | None = None
    releases: list[dict[str, object]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.reachable and self.current is not None and any(r["current"] for r in self.releases)


def parse_releases(result: Result) -> HostReleases:
    found = HostReleases(result.host, result.reached, result.error)
    rows = []
    for line in result.stdout.splitlines():
        kind, _, rest = line.partition("\t")
        if kind == "current" and rest.strip():
            found.current = rest.strip().rstrip("/").rsplit("/", 1)[-1]
        elif kind == "release":
            stamp, _, name = rest.partition("\t")
            installed = datetime.fromtimestamp(float(stamp), UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
            rows.append((float(stamp), name, installed))
    found.releases = [
        {"release": name, "installed": installed, "current": name == found.current}
        for _, name, installed in sorted(rows)
    ]
    return found


def run(args: argparse.Namespace) -> int:
    hosts = select_hosts(args, group="app")
    scripts = {host.name: releases_script(host) for host in hosts}
    results = run_everywhere(hosts, lambda h: scripts[h.name], label="releases", forks=args.forks, verbose=args.verbose)
    found = [parse_releases(r) for r in results]
    failed = any(f.reachable and not f.ok for f in found)
    if args.json:
        print_json({"ok": not failed and all(f.reachable for f in found), "hosts": [vars(f) for f in found]})
        return exit_code(results, failed)
    table = Table(title="app releases", title_justify="left")
    for column in ("host", "release", "installed", "current"):
        table.add_column(column)
    for f in found:
        if not f.reachable:
            table.add_row(mark(False, f.host), mark(False, "UNREACHABLE"), "", "")
        elif not f.releases:
            table.add_row(mark(False, f.host), mark(False, "no release installed"), "", "")
        for row in f.releases:
            current = bool(row["current"])
            table.add_row(
                f.host,
                mark(True if current else None, str(row["release"])),
                str(row["installed"]),
                mark(True, "current") if current else "",
            )
        if f.reachable and f.releases and not f.ok:
            table.add_row(mark(False, f.host), mark(False, f"current -> {f.current or 'nothing'}"), "", "")
    out = console()
    out.print(table)
    report_unreachable(out, results)
    return exit_code(results, failed)


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = sub.add_parser(
        "releases",
        parents=[common],
        help="releases installed on each app host and which one is current",
        description="Lists <app_root>/releases/* on every app host matching -l, oldest first, and marks the one "
        "the `current` symlink points to. Exit 1 when an app host has no current release.",
    )
    parser.set_defaults(handler=run)
