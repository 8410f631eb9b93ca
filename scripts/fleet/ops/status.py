"""`fleet status`: one table of every host's services, release, health, load, memory and disk."""

from __future__ import annotations

import argparse
import json
import shlex
from dataclasses import asdict, dataclass, field

from rich.table import Table
from rich.text import Text

from fleet.ops.inventory import Host
from fleet.ops.options import select_hosts
from fleet.ops.output import console, exit_code, mark, print_json, report_unreachable
from fleet.ops.remote import Result, run_everywhere
from fleet.ops.services import app_url, services_of, setting, unit_name

# Shell helpers the per-host script uses; every line of output is TAB-separated.
_PRELUDE = r"""
u() { s=$(systemctl is-active "$2" 2>/dev/null)
  [ "$(systemctl show -p LoadState --value "$2" 2>/dev/null)" = not-found ] && s=not-found
  printf 'unit\t%s\t%s\t%s\n' "$1" "$2" "${s:-unknown}"; }
p() { if command -v curl >/dev/null; then r=$(curl -s --max-time 5 -w '\t%{http_code}' "$2" 2>/dev/null)
  else r="curl not installed	000"; fi; printf 'probe\t%s\t%s\t%s\n' "$1" "$2" "$r"; }
printf 'load\t%s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
awk '/^MemTotal:/{t=$2} /^MemAvailable:/{a=$2} END{printf "mem\t%d\t%d\n", t, a}' /proc/meminfo
df -Pk / | awk 'NR==2{printf "disk\t%s\t%s\t%s\n", $2, $3, $4}'
"""


def status_script(host: Host) -> str:
    """The shell script that gathers one host's status in a single SSH round trip (nothing needs root)."""
    lines = [_PRELUDE.strip()]
    for service in services_of(host):
        unit = unit_name(host, service)
        if service.name != "postgresql":
            lines.append(f"u {service.name} {shlex.quote(unit)}")
            continue
        # The cluster units on this host (pg_lsclusters knows them even when stopped).
        cluster = setting(host, "postgresql", "postgresql_cluster")
        lines.append(
            f"pg=$( (pg_lsclusters -h 2>/dev/null | awk -v c={shlex.quote(cluster)} "
            '\'$2==c{print "postgresql@" $1 "-" $2 ".service"}\'; '
            f"systemctl list-units --all --plain --no-legend {shlex.quote(unit)} 2>/dev/null | awk '{{print $1}}')"
            " | sort -u)\n"
            f"[ -n \"$pg\" ] || printf 'unit\\tpostgresql\\t%s\\tnot-found\\n' {shlex.quote(unit)}\n"
            'for x in $pg; do u postgresql "$x"; done'
        )
    if "app" in host.groups:
        root = setting(host, "app", "app_root")
        lines.append(f"printf 'release\\t%s\\n' \"$(readlink {shlex.quote(root + '/current')} 2>/dev/null)\"")
        lines += [
            f"p health {shlex.quote(app_url(host, '/health'))}",
            f"p ready {shlex.quote(app_url(host, '/ready'))}",
        ]
    return "\n".join(lines) + "\n"


@dataclass
class Probe:
    url: str
    status: int
    body: str

    @property
    def ok(self) -> bool:
        return self.status == 200


@dataclass
class HostStatus:
    host: str
    groups: list[str]
    reachable: bool
    error: str | None = None
    services: list[dict[str, str]] = field(default_factory=list)
    release: str | None = None
    health: Probe | None = None
    ready: Probe | None = None
    load: list[float] = field(default_factory=list)
    memory: dict[str, int] = field(default_factory=dict)
    disk: dict[str, object] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        probes = [p for p in (self.health, self.ready) if p is not None]
        return (
            self.reachable
            and all(s["state"] == "active" for s in self.services)
            and all(p.ok for p in probes)
            and ("app" not in self.groups or bool(self.release))
        )

    def to_json(self) -> dict[str, object]:
        return {**asdict(self), "ok": self.ok}


def parse_status(host: Host, result: Result) -> HostStatus:
    """Read the script's TAB-separated lines."""
    status = HostStatus(result.host, list(host.groups), result.reached, result.error)
    if not result.reached:
        return status
    for line in result.stdout.splitlines():
        kind, _, rest = line.partition("\t")
        fields = rest.split("\t")
        if kind == "unit" and len(fields) == 3:
            status.services.append({"service": fields[0], "unit": fields[1], "state": fields[2]})
        elif kind == "probe" and len(fields) >= 2:
            name, url = fields[0], fields[1]
            body, code = (fields[2:-1], fields[-1]) if len(fields) >= 4 else ([], "000")
            probe = Probe(url, int(code) if code.isdigit() else 0, "\t".join(body))
            setattr(status, name, probe)
        elif kind == "release":
            status.release = rest.rstrip("/").rsplit("/", 1)[-1] or None
        elif kind == "load":
            status.load = [float(x) for x in rest.split()]
        elif kind == "mem" and len(fields) == 2:
            total, available = (int(x) for x in fields)
            status.memory = {"total_mb": total // 1024, "used_pct": round(100 * (total - available) / max(total, 1))}
        elif kind == "disk" and len(fields) == 3:
            size, used, available = (int(x) for x in fields)
            # As df counts it: blocks reserved for root are neither used nor available.
            used_pct = round(100 * used / max(used + available, 1))
            status.disk = {"path": "/", "size_gb": round(size / 1024 / 1024, 1), "used_pct": used_pct}
    return status


def _probe_cell(probe: Probe | None) -> Text:
    if probe is None:
        return mark(None, "-")
    if probe.status == 0:
        return mark(False, "no answer")
    text = str(probe.status)
    if not probe.ok:
        try:
            checks = json.loads(probe.body).get("checks", {})
            text += " " + ", ".join(f"{k}: {v}" for k, v in checks.items() if v != "ok")
        except (ValueError, AttributeError):
            pass
    return mark(probe.ok, text.strip())


def render(statuses: list[HostStatus]) -> Table:
    table = Table(title="fleet status", title_justify="left")
    for column in ("host", "groups", "services", "release", "/health", "/ready", "load", "memory", "disk /"):
        table.add_column(column, no_wrap=column != "services")
    for s in statuses:
        if not s.reachable:
            table.add_row(mark(False, s.host), ",".join(s.groups), mark(False, "UNREACHABLE"), *["-"] * 6)
            continue
        services = Text("\n").join(
            mark(x["state"] == "active", f"{x['service']} {x['state']} ({x['unit']})") for x in s.services
        )
        table.add_row(
            mark(s.ok, s.host),
            ",".join(s.groups),
            services or mark(None, "-"),
            mark(bool(s.release), s.release or "none") if "app" in s.groups else mark(None, "-"),
            _probe_cell(s.health),
            _probe_cell(s.ready),
            " ".join(f"{x:.2f}" for x in s.load),
            f"{s.memory.get('used_pct', '?')}% of {s.memory.get('total_mb', '?')} MB",
            f"{s.disk.get('used_pct', '?')}% of {s.disk.get('size_gb', '?')} GB",
        )
    return table


def run(args: argparse.Namespace) -> int:
    hosts = select_hosts(args)
    scripts = {host.name: status_script(host) for host in hosts}  # bad variables fail before any SSH
    results = run_everywhere(hosts, lambda h: scripts[h.name], label="status", forks=args.forks, verbose=args.verbose)
    statuses = [parse_status(host, result) for host, result in zip(hosts, results, strict=True)]
    failed = not all(s.ok for s in statuses)
    if args.json:
        print_json({"ok": not failed, "hosts": [s.to_json() for s in statuses]})
    else:
        out = console()
        out.print(render(statuses))
        report_unreachable(out, results)
        down = [s.host for s in statuses if s.reachable and not s.ok]
        if down:
            out.print(mark(False, "something is down on: " + ", ".join(down)))
    return exit_code(results, failed)


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = sub.add_parser(
        "status",
        parents=[common],
        help="services, release, /health and /ready, load, memory, disk of every host",
        description="One table: each host's groups, the real state of each service's unit (the PostgreSQL "
        "cluster unit, not Debian's umbrella one), the current release, /health and /ready asked at the "
        "address the app is bound to, load, memory and disk. Exit 1 when something is down, 3 when a host "
        "is unreachable.",
    )
    parser.set_defaults(handler=run)
