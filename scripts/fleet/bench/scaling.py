"""What ``fleet bench ansible`` compares, the inventories it runs on, and its report (pure, tested).

A fleet of N inventory hosts: the first carries every tier (load balancer, app, PostgreSQL,
Redis: the same work at every size), the other N - 1 are in a group of their own, ``base``,
and get the base system only (the ``common`` role without the firewall: packages, time,
kernel settings, limits, journald, the deploy user: the light role set that grows with N).
No setting of any host depends on the others, so hosts can share a machine: each inventory
host has an address of its own (its own SSH connections, as on separate machines) and the
base hosts are spread over the lab machines there is room for (a host's inotify limit caps
how many machines boot). What a machine runs once for all its inventory hosts (the node
exporter) is written the same by each of them: it listens on the machine's own address.
Each setting is Ansible's configuration through its environment variables, over the
repository's ansible.cfg; the time is a no-change ``site.yml`` run.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rich.table import Table


@dataclass(frozen=True)
class Setting:
    """A way to run Ansible: environment overrides of ansible.cfg, and what they mean."""

    name: str
    env: Mapping[str, str]
    meaning: str


# Ansible's own defaults: forks 5, no pipelining, facts in memory, gathered by every play.
_ANSIBLE_DEFAULTS = {
    "ANSIBLE_FORKS": "5",
    "ANSIBLE_PIPELINING": "False",
    "ANSIBLE_CACHE_PLUGIN": "memory",
    "ANSIBLE_GATHERING": "implicit",
}

SETTINGS: dict[str, Setting] = {
    s.name: s
    for s in (
        Setting("bundle", {}, "ansible.cfg as shipped: forks 20, pipelining, jsonfile fact cache, smart gathering"),
        Setting("forks-5", {"ANSIBLE_FORKS": "5"}, "the bundle with Ansible's default forks (5)"),
        Setting("no-pipelining", {"ANSIBLE_PIPELINING": "False"}, "the bundle without pipelining"),
        Setting(
            "no-fact-cache",
            {"ANSIBLE_CACHE_PLUGIN": "memory"},
            "the bundle with facts kept in memory only (gathered once per run)",
        ),
        Setting("free", {"ANSIBLE_STRATEGY": "free"}, "the bundle with the free strategy (hosts do not wait per task)"),
        Setting(
            "ansible-defaults",
            _ANSIBLE_DEFAULTS,
            "Ansible's defaults: forks 5, no pipelining, no fact cache, every play gathers facts",
        ),
    )
}
DEFAULT_SETTINGS = tuple(SETTINGS)
DEFAULT_SIZES = (5, 10, 20)
MIN_SIZE = 2
MAX_SIZE = 40


def host_names(prefix: str, count: int) -> list[str]:
    return [f"{prefix}{number:02d}" for number in range(1, count + 1)]


def placement(size: int, machines: int) -> list[int]:
    """Which machine carries each inventory host: the first host the first machine alone, the
    base hosts spread over the other machines in turn (one each while there are enough)."""
    if machines < MIN_SIZE:
        raise ValueError(f"need at least {MIN_SIZE} machines, not {machines}")
    return [0] + [1 + (index - 1) % (machines - 1) if index >= machines else index for index in range(1, size)]


def inventory(
    names: Sequence[str],
    addresses: Sequence[str],
    distro: str,
    known_hosts: str | None = None,
    machine_of: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The fleet of ``len(names)`` hosts: the first one every tier, the others the base system only.

    Base hosts skip the host firewall: its ruleset names its host, so two inventory hosts on one
    machine would rewrite each other's. ``known_hosts``: a file with the key of every address.
    ``machine_of``: the address of the machine that carries each address; a host on another
    host's machine has that machine's exporters (one node exporter, on the machine's address).
    """
    backend, *others = names
    tiers = {group: {"hosts": {backend: None}} for group in ("loadbalancers", "app", "postgres", "redis")}
    ssh = {}
    if known_hosts:
        ssh = {"ansible_ssh_common_args": f"-o UserKnownHostsFile={known_hosts} -o StrictHostKeyChecking=yes"}
    shared = {
        address: {"exporters_listen_address": machine}
        for address, machine in (machine_of or {}).items()
        if machine != address
    }
    return {
        "all": {
            "children": {
                **tiers,
                "base": {"hosts": dict.fromkeys(others), "vars": {"common_firewall_enabled": False}},
            },
            "hosts": {
                name: {"ansible_host": address, "lab_distro": distro, **ssh, **shared.get(address, {})}
                for name, address in zip(names, addresses, strict=True)
            },
        }
    }


@dataclass(frozen=True)
class Timing:
    """One timed no-change run."""

    setting: str
    hosts: int
    seconds: float
    changed: int
    ok: bool
    load1: float = 0.0


@dataclass(frozen=True)
class Growth:
    """How one setting's time grows with the fleet: a least-squares line through its sizes."""

    setting: str
    seconds: dict[int, float] = field(default_factory=dict)
    per_host: float | None = None
    fixed: float | None = None
    largest_over_smallest: float | None = None


def fit(points: Mapping[int, float]) -> tuple[float | None, float | None]:
    """Slope (seconds per host) and intercept of the least-squares line; None below two sizes."""
    if len(points) < 2:
        return None, None
    xs, ys = list(points), list(points.values())
    mean_x, mean_y = statistics.fmean(xs), statistics.fmean(ys)
    spread = sum((x - mean_x) ** 2 for x in xs)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / spread
    return round(slope, 2), round(mean_y - slope * mean_x, 1)


def growth(timings: Sequence[Timing]) -> list[Growth]:
    """Per setting (in the order first timed): seconds by size (median of its runs) and the fitted line."""
    order = list(dict.fromkeys(t.setting for t in timings))
    result = []
    for name in order:
        by_size: dict[int, list[float]] = {}
        for t in timings:
            if t.setting == name and t.ok and t.changed == 0:
                by_size.setdefault(t.hosts, []).append(t.seconds)
        seconds = {size: round(statistics.median(values), 1) for size, values in sorted(by_size.items())}
        per_host, fixed = fit(seconds)
        ratio = None
        if len(seconds) >= 2:
            smallest, largest = min(seconds), max(seconds)
            ratio = round(seconds[largest] / seconds[smallest], 2) if seconds[smallest] > 0 else None
        result.append(Growth(name, seconds, per_host, fixed, ratio))
    return result


def least_growth(growths: Sequence[Growth]) -> Growth | None:
    fitted = [g for g in growths if g.per_host is not None]
    return min(fitted, key=lambda g: g.per_host or 0.0) if fitted else None


def headline(growths: Sequence[Growth]) -> list[str]:
    lines = []
    best = least_growth(growths)
    if best is not None:
        lines.append(
            f"grows least: {best.setting} ({SETTINGS[best.setting].meaning if best.setting in SETTINGS else ''}),"
            f" {best.per_host:.2f}s per added host"
        )
    by_name = {g.setting: g for g in growths}
    bundle, stock = by_name.get("bundle"), by_name.get("ansible-defaults")
    if bundle and stock:
        for size in sorted(set(bundle.seconds) & set(stock.seconds)):
            if bundle.seconds[size] > 0:
                lines.append(
                    f"ansible-defaults/bundle at {size} hosts: {stock.seconds[size] / bundle.seconds[size]:.2f}"
                    f" ({stock.seconds[size]:.0f}s vs {bundle.seconds[size]:.0f}s)"
                )
    return lines


def table(growths: Sequence[Growth], sizes: Sequence[int]) -> Table:
    grid = Table(title="fleet bench ansible: a no-change site.yml run (seconds)")
    grid.add_column("setting")
    for size in sizes:
        grid.add_column(f"{size} hosts", justify="right")
    for column in ("s per host", "fixed s", f"{max(sizes)}/{min(sizes)}"):
        grid.add_column(column, justify="right")
    for g in growths:
        grid.add_row(
            g.setting,
            *(f"{g.seconds[size]:.0f}" if size in g.seconds else "-" for size in sizes),
            "-" if g.per_host is None else f"{g.per_host:.2f}",
            "-" if g.fixed is None else f"{g.fixed:.0f}",
            "-" if g.largest_over_smallest is None else f"{g.largest_over_smallest:.2f}",
        )
    return grid


def document(
    timings: Sequence[Timing], settle: Sequence[Timing], *, sizes: Sequence[int], cpus: int, machines: int = 0
) -> dict[str, Any]:
    growths = growth(timings)
    loads = [t.load1 for t in timings]
    return {
        "kind": "fleet-bench-ansible",
        "sizes": list(sizes),
        "machines": machines,
        "shape": "host 1: every tier; the others: the base system only (common, no firewall)",
        "settings": {name: {"env": dict(s.env), "meaning": s.meaning} for name, s in SETTINGS.items()},
        "machine": {
            "cpus": cpus,
            "load1_min": round(min(loads), 2) if loads else None,
            "load1_max": round(max(loads), 2) if loads else None,
        },
        "growth": [
            {
                "setting": g.setting,
                "seconds": {str(k): v for k, v in g.seconds.items()},
                "per_host_s": g.per_host,
                "fixed_s": g.fixed,
                "largest_over_smallest": g.largest_over_smallest,
            }
            for g in growths
        ],
        "runs": [t.__dict__ for t in timings],
        "settle_runs": [t.__dict__ for t in settle],
    }
