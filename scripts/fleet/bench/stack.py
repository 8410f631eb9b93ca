"""``fleet bench`` (``fleet bench stack``): the deployed stack, measured on lab machines.

For each deployment, in this order: the naive baseline (``naive.yml`` next to this file: one
Uvicorn worker, no upstream keepalive, PostgreSQL's and Redis' stock settings), then the
bundle's tuned defaults. Each is deployed by ``ansible-playbook playbooks/site.yml`` on the
same inventory, then measured from this machine with wrk (``fleet.load``, another process):
``GET /health``, a cache-hit item read and a database-backed list, each through the load
balancer and straight to one app host, and nginx's own static answer on the load balancer
(the ceiling). Rounds alternate the targets, so a change of the machine's load spreads over
all of them. The lab is left on the inventory's own deployment: the tuned run is last, and
when extra variables were given (or only the naive baseline ran) a last run of site.yml
without them puts it back.

Measuring needs the bench settings (inventories/bench/group_vars/all/bench.yml): the
per-client limits lifted (all the load comes from one address), the static path, and a
firewall rule that admits this machine to the app port. An inventory without them takes
the same file as extra variables: ``-e @inventories/bench/group_vars/all/bench.yml``.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import yaml

from fleet.bench import report
from fleet.bench.playbook import PlaybookRun, command_line, run_playbook
from fleet.bench.report import Measurement, RunFigures
from fleet.errors import FleetError
from fleet.load import LoadError, check_target, run_load
from fleet.ops.inventory import REPO, Host, InventorySource, load_hosts
from fleet.ops.remote import as_root, run_one
from fleet.ops.services import setting

NAIVE_VARS = Path(__file__).with_name("naive.yml")
BENCH_SETTINGS = REPO / "inventories" / "bench" / "group_vars" / "all" / "bench.yml"
ITEMS = "/api/v1/items"
LIST_LIMIT = 20
HTTP_TIMEOUT = 10.0
READY_TIMEOUT = 120.0


@dataclass(frozen=True)
class Options:
    """What a run measures and how (checked by :func:`check_options` before anything runs)."""

    source: InventorySource
    extra_vars: tuple[str, ...] = ()
    deployments: tuple[str, ...] = ("naive", "tuned")
    duration: int = 10
    warmup: int = 3
    rounds: int = 3
    connections: int = 64
    threads: int = 2
    timeout: float = 5.0
    items: int = 100
    restore: bool = True
    deploy: bool = True
    allow: tuple[str, ...] = ()
    load_balancer: str | None = None
    app_host: str | None = None
    output_dir: Path = REPO / ".cache" / "bench"
    verbose: int = 0


@dataclass(frozen=True)
class Stack:
    """Where the harness aims: one load balancer, one app host, and what they answer on."""

    load_balancer: Host
    app: Host
    lb_url: str
    app_url: str
    static_path: str
    app_hosts: tuple[str, ...]

    def describe(self) -> dict[str, Any]:
        return {
            "load_balancer": self.load_balancer.name,
            "app_host": self.app.name,
            "app_hosts": list(self.app_hosts),
            "proxied": self.lb_url,
            "direct": self.app_url,
            "ceiling": self.lb_url + self.static_path,
        }


@dataclass(frozen=True)
class Target:
    endpoint: str
    route: str
    url: str


@dataclass
class Seeded:
    """Items the run created for the item and list reads (deleted at the end)."""

    ids: list[int] = field(default_factory=list)

    @property
    def item_path(self) -> str:
        return f"{ITEMS}/{self.ids[0]}"

    @property
    def list_path(self) -> str:
        return f"{ITEMS}?limit={LIST_LIMIT}&after={self.ids[0] - 1}"


Note = Callable[[str], None]


BOUNDS = {
    "duration": (1, 120),
    "warmup": (0, 60),
    "rounds": (1, 10),
    "connections": (1, 1024),
    "threads": (1, 16),
    "items": (LIST_LIMIT, 1000),
}


def check_options(options: Options) -> None:
    """Refuse bad numbers, unknown deployments and missing files before anything runs."""
    for name, (low, high) in BOUNDS.items():
        value = getattr(options, name)
        if not low <= value <= high:
            raise FleetError(f"--{name} must be {low}..{high}, not {value}")
    if options.connections < options.threads:
        raise FleetError("--connections must be at least --threads (wrk needs one connection per thread)")
    if not 0 < options.timeout <= 60:
        raise FleetError(f"--timeout must be above 0 and at most 60 seconds, not {options.timeout:g}")
    unknown = [d for d in options.deployments if d not in report.DEPLOYMENTS]
    if unknown or not options.deployments or len(set(options.deployments)) != len(options.deployments):
        raise FleetError(f"--deployments takes naive, tuned or both, not {','.join(options.deployments)}")
    for item in options.extra_vars:
        if item.startswith("@") and not Path(item[1:]).is_file():
            raise FleetError(f"extra variables file {item[1:]} does not exist")


def extra_settings(extra_vars: Sequence[str]) -> dict[str, Any]:
    """The variables of the ``@file`` (YAML) and JSON extra vars, later ones winning."""
    merged: dict[str, Any] = {}
    for item in extra_vars:
        try:
            text = Path(item[1:]).read_text() if item.startswith("@") else item
            data = yaml.safe_load(text)
        except (OSError, yaml.YAMLError) as exc:
            raise FleetError(f"cannot read extra variables {item}: {exc}") from None
        if not isinstance(data, dict):
            raise FleetError(f"extra variables {item} are not a mapping of names to values")
        merged.update(data)
    return merged


def _pick(hosts: list[Host], group: str, name: str | None, option: str) -> Host:
    members = [host for host in hosts if group in host.groups]
    if name is not None:
        chosen = [host for host in members if host.name == name]
        if not chosen:
            raise FleetError(f"{option} {name}: not a host of the {group} group")
        return chosen[0]
    if not members:
        raise FleetError(f"the inventory has no host in the {group} group")
    return members[0]


def _value(host: Host, role: str, name: str, extra: dict[str, Any]) -> str:
    """A role variable as the deploy will see it: extra vars, else the inventory's literal, else the default."""
    return str(extra[name]) if name in extra else setting(host, role, name)


def resolve_stack(options: Options, hosts: list[Host]) -> Stack:
    """The load balancer and app host to measure, their URLs, and the checks that need no host."""
    extra = extra_settings(options.extra_vars)
    lb = _pick(hosts, "loadbalancers", options.load_balancer, "--load-balancer")
    app = _pick(hosts, "app", options.app_host, "--app-host")
    for group in ("postgres", "redis"):
        _pick(hosts, group, None, "")
    https_port = _value(lb, "nginx", "nginx_https_port", extra)
    lb_url = f"https://{lb.address}" + ("" if https_port == "443" else f":{https_port}")
    listen = str(extra.get("app_listen_address") or app.text("app_listen_address", "") or app.private_address)
    listen = f"[{listen}]" if ":" in listen else listen
    app_url = f"http://{listen}:{_value(app, 'app', 'app_port', extra)}"
    static_path = _value(lb, "nginx", "nginx_static_path", extra)
    if not static_path:
        raise FleetError(
            f"{lb.name}: nginx_static_path is empty, so nginx has no static answer to measure the ceiling with; "
            f"use the bench settings (-e @{BENCH_SETTINGS.relative_to(REPO)})"
        )
    allow = options.allow or None
    for url in (lb_url, app_url):
        try:
            check_target(url, *([allow] if allow else []))
        except LoadError as exc:
            raise FleetError(str(exc)) from None
    app_hosts = tuple(host.name for host in hosts if "app" in host.groups)
    return Stack(lb, app, lb_url, app_url, static_path, app_hosts)


def targets(stack: Stack, seeded: Seeded) -> list[Target]:
    """What one round measures, in order: each endpoint proxied then direct, then the ceiling."""
    paths = {"health": "/health", "item": seeded.item_path, "list": seeded.list_path}
    found = []
    for endpoint in report.ENDPOINTS:
        found.append(Target(endpoint, "proxied", stack.lb_url + paths[endpoint]))
        found.append(Target(endpoint, "direct", stack.app_url + paths[endpoint]))
    found.append(Target(*report.CEILING, stack.lb_url + stack.static_path))
    return found


# --- the lab side: deploys, readiness, seeding, what was deployed -------------------------


def deploy(options: Options, name: str, extra_vars: Sequence[str], log: Path, note: Note) -> PlaybookRun:
    command = command_line(
        options.source.path, extra_vars=extra_vars, vault_password_file=options.source.vault_password_file
    )
    note(f"deploying {name}: {' '.join(command)} (log: {log})")
    run = run_playbook(command, log)
    note(f"deployed {name} in {run.seconds:.0f}s ({run.changed} changed)")
    if not run.ok:
        raise DeployError(f"the {name} deployment failed (exit {run.returncode}); log: {log}\n{run.tail}")
    return run


class DeployError(FleetError):
    """ansible-playbook failed: reported with the end of its output (exit 1, not 2)."""


def wait_ready(stack: Stack, note: Note, timeout: float = READY_TIMEOUT) -> None:
    """Every target answers 200 (after a deploy the app may still be starting); clear errors otherwise."""
    probes = {
        "the load balancer": stack.lb_url + "/health",
        "the app host, direct": stack.app_url + "/health",
        "nginx's static answer": stack.lb_url + stack.static_path,
    }
    deadline = time.monotonic() + timeout
    with httpx.Client(verify=False, timeout=3.0) as client:  # noqa: S501 - the lab's self-signed certificates
        for what, url in probes.items():
            while True:
                problem = ""
                try:
                    status = client.get(url).status_code
                    if status == 200:
                        break
                    problem = f"answers {status}"
                except httpx.HTTPError as exc:
                    problem = f"{type(exc).__name__}: {exc}"
                if time.monotonic() > deadline:
                    hint = (
                        " (the firewall admits the app port from the load balancers only: the bench settings add"
                        " this machine)"
                        if "direct" in what
                        else ""
                    )
                    raise FleetError(f"{what} ({url}) {problem}{hint}")
                time.sleep(1)
    note("every target answers 200")


def seed(stack: Stack, count: int, note: Note) -> Seeded:
    """Create ``count`` items through the load balancer (their ids are the item and list reads)."""
    tag = uuid.uuid4().hex[:8]
    seeded = Seeded()
    with httpx.Client(base_url=stack.lb_url, verify=False, timeout=HTTP_TIMEOUT) as client:  # noqa: S501
        for number in range(count):
            body = {"name": f"fleet-bench {tag} {number}", "description": "x" * 100}
            response = client.post(ITEMS, json=body)
            if response.status_code == 429:
                raise FleetError(
                    "the load balancer rate-limits this machine (429): the bench settings lift the per-client"
                    f" limits (-e @{BENCH_SETTINGS.relative_to(REPO)})"
                )
            if response.status_code != 201:
                raise FleetError(f"creating an item answered {response.status_code}: {response.text[:200]}")
            seeded.ids.append(int(response.json()["id"]))
    seeded.ids.sort()
    note(f"created {count} items ({seeded.ids[0]}..{seeded.ids[-1]}, tag {tag})")
    return seeded


def remove(stack: Stack, seeded: Seeded, note: Note) -> None:
    """Delete the items the run created (best effort: what is left is reported, never raised)."""
    left: list[int] = []
    with httpx.Client(base_url=stack.lb_url, verify=False, timeout=HTTP_TIMEOUT) as client:  # noqa: S501
        for position, item_id in enumerate(seeded.ids):
            try:
                if client.delete(f"{ITEMS}/{item_id}").status_code not in (204, 404):
                    left.append(item_id)
            except httpx.HTTPError as exc:
                note(f"cannot delete the run's items ({type(exc).__name__}): {len(seeded.ids) - position} left")
                return
    note(f"deleted the run's {len(seeded.ids) - len(left)} items{f'; refused: {left}' if left else ''}")


# One shell line per tier: the settings the naive baseline changes, as the hosts run them.
DEPLOYED_PROBES: dict[str, tuple[str, str]] = {
    "app workers": ("app", "sed -n \"s/^APP_WORKERS='\\(.*\\)'$/\\1/p\" {config_dir}/app.env"),
    "nginx upstream keepalive": (
        "loadbalancers",
        "nginx -T 2>/dev/null | sed -n 's/^[[:space:]]*keepalive \\([0-9]*\\);/\\1/p' | head -1 | grep . || echo off",
    ),
    "postgresql shared_buffers": ("postgres", "runuser -u postgres -- psql -XAtc 'SHOW shared_buffers'"),
    "redis maxmemory": (
        "redis",
        "sed -n 's/^maxmemory \\(.*\\)$/\\1/p' /etc/redis/redis.conf | grep . || echo 'none (stock)'",
    ),
}


def deployed_settings(stack: Stack, hosts: list[Host]) -> dict[str, str]:
    """What the hosts actually run, read back over SSH (so a report cannot claim a baseline it did not get)."""
    chosen = {"app": stack.app, "loadbalancers": stack.load_balancer}
    found: dict[str, str] = {}
    for label, (group, command) in DEPLOYED_PROBES.items():
        host = chosen.get(group) or next((h for h in hosts if group in h.groups), None)
        if host is None:
            continue
        line = command.format(config_dir=setting(host, "app", "app_config_dir")) if group == "app" else command
        result = run_one(host, as_root(host, line), timeout=30)
        found[label] = result.stdout.strip() if result.ok else f"unknown ({result.error or result.stderr.strip()})"
    return found


# --- measuring ------------------------------------------------------------------------------


def cache_hits(app: Host) -> float | None:
    """The app host's cache hits so far; None when unreadable.

    Read on the host itself from loopback over SSH: the app answers /metrics only to loopback
    and the monitoring hosts, never to the control node.
    """
    port = setting(app, "app", "app_port")
    result = run_one(app, f"curl -sf --max-time 5 http://127.0.0.1:{port}/metrics", timeout=30)
    if not result.ok:
        return None
    try:
        return report.cache_hits_in(result.stdout)
    except ValueError:
        return None


def measure(target: Target, options: Options, stack: Stack, duration: int) -> RunFigures:
    """One wrk run on one target; for the item read, the share of its requests that hit the cache."""
    before = cache_hits(stack.app) if target.endpoint == "item" else None
    load1 = os.getloadavg()[0]
    allow = {"allow": options.allow} if options.allow else {}
    try:
        result = run_load(
            target.url,
            duration=duration,
            connections=options.connections,
            threads=options.threads,
            timeout=options.timeout,
            **allow,
        )
    except LoadError as exc:
        raise FleetError(f"{target.url}: {exc}") from None
    hit_ratio = None
    if before is not None:
        after = cache_hits(stack.app)
        # Direct runs reach only this app host's counter; proxied ones too when it is the only app host.
        if after is not None and (target.route == "direct" or len(stack.app_hosts) == 1) and result.ok:
            hit_ratio = round(min(1.0, (after - before) / result.ok), 4)
    return RunFigures(
        rps=round(result.rps, 1),
        p50_ms=result.p50_ms,
        p95_ms=result.p95_ms,
        p99_ms=result.p99_ms,
        sent=result.sent,
        ok=result.ok,
        non_2xx=result.non_2xx,
        errors=result.errors.total,
        duration_s=result.duration_s,
        load1=round(load1, 2),
        cache_hit_ratio=hit_ratio,
    )


def measure_deployment(name: str, stack: Stack, seeded: Seeded, options: Options, note: Note) -> list[Measurement]:
    """Warm every target, then ``rounds`` rounds over all of them; one measurement per target."""
    plan = targets(stack, seeded)
    runs: dict[Target, list[RunFigures]] = {target: [] for target in plan}
    if options.warmup:
        note(f"{name}: warming up {len(plan)} targets, {options.warmup}s each")
        for target in plan:
            measure(target, options, stack, options.warmup)
    for number in range(1, options.rounds + 1):
        note(f"{name}: round {number} of {options.rounds}, {len(plan)} targets x {options.duration}s")
        for target in plan:
            figures = measure(target, options, stack, options.duration)
            runs[target].append(figures)
            if options.verbose:
                note(
                    f"  {target.endpoint} {target.route}: {figures.rps:.0f} req/s, p99 {figures.p99_ms:.1f} ms,"
                    f" {figures.non_2xx + figures.errors} failed, load {figures.load1:.1f}"
                )
    return [Measurement(name, t.endpoint, t.route, t.url, tuple(runs[t])) for t in plan]


# --- the run ----------------------------------------------------------------------------------


@dataclass
class Outcome:
    """What a run produced (also when it stopped early: the measurements so far)."""

    measurements: list[Measurement] = field(default_factory=list)
    deployments: list[dict[str, Any]] = field(default_factory=list)
    restored: dict[str, Any] | None = None
    started: str = ""
    stack: dict[str, Any] = field(default_factory=dict)


def prepare(options: Options) -> tuple[list[Host], Stack]:
    """Every check that needs no change on any host: options, inventory, targets."""
    check_options(options)
    hosts = load_hosts(options.source)
    return hosts, resolve_stack(options, hosts)


def run(options: Options, hosts: list[Host], stack: Stack, note: Note, outcome: Outcome) -> None:
    """Deploy and measure each deployment into ``outcome``, then leave the lab on the inventory's own deployment."""
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    outcome.started = datetime.now(UTC).isoformat(timespec="seconds")
    outcome.stack = stack.describe()
    per_run = len(targets(stack, Seeded([1]))) * (options.rounds * options.duration + options.warmup)
    note(
        f"measuring {', '.join(options.deployments)} on {stack.load_balancer.name} -> {stack.app.name}:"
        f" about {per_run}s of load per deployment{' plus the deploys' if options.deploy else ''}"
    )
    seeded: Seeded | None = None
    # Extra variables of the last deploy that started: unless empty, the lab differs from the inventory.
    last_extra: tuple[str, ...] = ()
    interrupted = False
    try:
        for name in options.deployments:
            extra = ((f"@{NAIVE_VARS}",) if name == "naive" else ()) + options.extra_vars
            entry: dict[str, Any] = {"name": name, "extra_vars": list(extra)}
            if options.deploy:
                last_extra = extra
                played = deploy(options, name, extra, options.output_dir / f"stack-{stamp}-{name}.log", note)
                entry |= {"deploy_seconds": round(played.seconds, 1), "changed": played.changed}
            wait_ready(stack, note)
            entry["deployed"] = deployed_settings(stack, hosts)
            note(f"{name} runs: " + ", ".join(f"{k} {v}" for k, v in entry["deployed"].items()))
            outcome.deployments.append(entry)
            if seeded is None:
                seeded = seed(stack, options.items, note)
            outcome.measurements += measure_deployment(name, stack, seeded, options, note)
    except KeyboardInterrupt:
        interrupted = True
        if last_extra:
            note("interrupted: the lab may still run a benchmark deployment; site.yml on the inventory restores it")
        raise
    finally:
        if seeded is not None and not interrupted:
            remove(stack, seeded, note)
        if options.deploy and options.restore and last_extra and not interrupted:
            outcome.restored = _restore(options, stamp, note)


def _restore(options: Options, stamp: str, note: Note) -> dict[str, Any]:
    """site.yml on the inventory as it is, so the lab is left as the inventory says."""
    try:
        played = deploy(options, "the inventory as it is", (), options.output_dir / f"stack-{stamp}-restore.log", note)
    except DeployError as exc:
        note(f"restoring failed: {exc}")
        return {"ok": False, "log": str(options.output_dir / f"stack-{stamp}-restore.log")}
    return {"ok": True, "deploy_seconds": round(played.seconds, 1), "changed": played.changed}
