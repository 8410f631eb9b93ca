"""``fleet bench``: the deployed stack measured on lab machines, and Ansible's cost at fleet sizes.

``fleet bench [-i INVENTORY]`` deploys the naive baseline and then the bundle's tuned defaults
to the same lab machines (``playbooks/site.yml``), measures each from this machine with wrk
(/health, a cache-hit item read, a database list; through the load balancer, direct to one
app host, and nginx's static answer as the ceiling), and prints the table and the ratios
(tuned/naive, proxied/direct, app/ceiling); the JSON goes to a file (or stdout with --json).
``fleet bench ansible`` times no-change site.yml runs at 5, 10 and 20 lab hosts under
several Ansible settings. ``fleet bench loopback`` measures the app alone on this machine.
Method and results: docs/performance.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console

from fleet.bench import ansible_runs, loopback, report, scaling
from fleet.errors import ExitCode, FleetError
from fleet.ops.inventory import REPO, resolve_source
from fleet.ops.output import console

DEFAULT_INVENTORY = REPO / "inventories" / "bench"
DEFAULT_OUTPUT_DIR = REPO / ".cache" / "bench"


def _csv(kind: type) -> Any:  # noqa: ANN401 - an argparse type
    def parse(text: str) -> tuple[Any, ...]:
        try:
            return tuple(kind(word.strip()) for word in text.split(",") if word.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a comma-separated list: {text!r}") from None

    return parse


def _output_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-o", "--output", type=Path, help=f"JSON file (default: under {DEFAULT_OUTPUT_DIR.relative_to(REPO)}/)"
    )
    parser.add_argument("--json", action="store_true", help="print the JSON instead of the table")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="a progress line for every measured run")


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "bench",
        help="measure the deployed stack on lab machines (tuned vs naive; also: ansible, loopback)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    stack = parser.add_argument_group("the deployed stack (fleet bench [options])")
    stack.add_argument(
        "-i", "--inventory", default=str(DEFAULT_INVENTORY), help="lab inventory (default: inventories/bench)"
    )
    stack.add_argument("--vault-password-file", help="for inventories with vaulted variables")
    stack.add_argument(
        "-e",
        "--extra-vars",
        action="append",
        default=[],
        metavar="@FILE|JSON",
        help="extra variables for every deploy of the run, e.g. -e @inventories/bench/group_vars/all/bench.yml",
    )
    stack.add_argument(
        "--deployments", type=_csv(str), default=("naive", "tuned"), help="naive,tuned (default), or one of them"
    )
    stack.add_argument("-d", "--duration", type=int, default=10, help="seconds per measured run (default 10)")
    stack.add_argument("--warmup", type=int, default=3, help="unmeasured seconds per target first (default 3)")
    stack.add_argument("--rounds", type=int, default=3, help="rounds over all targets (default 3)")
    stack.add_argument("-c", "--connections", type=int, default=64, help="wrk connections (default 64)")
    stack.add_argument("-t", "--threads", type=int, default=2, help="wrk threads (default 2)")
    stack.add_argument("--timeout", type=float, default=5.0, help="seconds before a request counts as timed out")
    stack.add_argument("--items", type=int, default=100, help="items created for the reads (default 100)")
    stack.add_argument("--load-balancer", help="the load balancer to measure (default: the first)")
    stack.add_argument("--app-host", help="the app host to measure directly (default: the first)")
    stack.add_argument("--allow", action="append", help="network targets may be in (default: loopback and the lab)")
    stack.add_argument(
        "--no-restore", action="store_true", help="leave the last deployment as it is (default: the inventory's)"
    )
    _output_options(parser)
    parser.set_defaults(handler=run_stack)

    modes = parser.add_subparsers(dest="mode", metavar="{ansible,loopback}")
    ansible = modes.add_parser(
        "ansible",
        help="time no-change site.yml runs at several fleet sizes and Ansible settings (root: boots lab machines)",
        description=ansible_runs.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ansible.add_argument("--sizes", type=_csv(int), default=scaling.DEFAULT_SIZES, help="fleet sizes (default 5,10,20)")
    ansible.add_argument("--machines", type=int, default=5, help="lab machines the hosts are spread over (default 5)")
    ansible.add_argument(
        "--settings",
        type=_csv(str),
        default=scaling.DEFAULT_SETTINGS,
        help=f"settings to time (default: all of {','.join(scaling.SETTINGS)})",
    )
    ansible.add_argument("--prefix", default="bench-n", help="machine names: PREFIX01, PREFIX02, ... (default bench-n)")
    ansible.add_argument("--first-address", default="10.231.0.160", help="address of the first machine (default .160)")
    ansible.add_argument("--distro", default="bookworm", help="Debian release of the machines (default bookworm)")
    ansible.add_argument("--keep", action="store_true", help="leave the machines running afterwards")
    _output_options(ansible)
    ansible.set_defaults(handler=run_ansible)

    loop = modes.add_parser(
        "loopback",
        help="the app alone on loopback (throwaway PostgreSQL, Redis, Gunicorn; no lab)",
        description=loopback.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    loopback.add_arguments(loop)


class Progress:
    """Progress lines on stderr, with the time since the start (the table and JSON go to stdout)."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.console = Console(stderr=True, highlight=False, soft_wrap=True)

    def __call__(self, line: str) -> None:
        elapsed = int(time.monotonic() - self.started)
        self.console.print(f"[dim]{elapsed // 60:02d}:{elapsed % 60:02d}[/dim] {line}", markup=True)


def _write(document: dict[str, Any], output: Path | None, kind: str, as_json: bool, note: Progress) -> Path:
    path = output or DEFAULT_OUTPUT_DIR / f"{kind}-{datetime.now(UTC).strftime('%Y%m%d-%H%M%S')}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n")
    if as_json:
        print(json.dumps(document, indent=2))
    note(f"JSON: {path}")
    return path


def run_stack(args: argparse.Namespace) -> int:
    from fleet.bench import stack

    options = stack.Options(
        source=resolve_source(args.inventory, args.vault_password_file),
        extra_vars=tuple(args.extra_vars),
        deployments=tuple(args.deployments),
        duration=args.duration,
        warmup=args.warmup,
        rounds=args.rounds,
        connections=args.connections,
        threads=args.threads,
        timeout=args.timeout,
        items=args.items,
        restore=not args.no_restore,
        allow=tuple(args.allow or ()),
        load_balancer=args.load_balancer,
        app_host=args.app_host,
        output_dir=DEFAULT_OUTPUT_DIR,
        verbose=args.verbose,
    )
    note = Progress()
    hosts, target = stack.prepare(options)  # bad input: exit 2 before any host changes
    outcome = stack.Outcome()
    failure: FleetError | None = None
    try:
        stack.run(options, hosts, target, note, outcome)
    except stack.DeployError as exc:
        failure = exc
    except FleetError as exc:
        if not outcome.deployments:
            raise
        failure = exc  # something changed already: report what was measured, exit 1
    settings = {
        "duration_s": options.duration,
        "warmup_s": options.warmup,
        "rounds": options.rounds,
        "connections": options.connections,
        "threads": options.threads,
        "timeout_s": options.timeout,
        "inventory": str(options.source.path),
        "extra_vars": list(options.extra_vars),
    }
    document = report.document(
        outcome.measurements,
        settings=settings,
        stack=outcome.stack,
        deployments=outcome.deployments,
        cpus=os.cpu_count() or 0,
    )
    document |= {"started": outcome.started, "restored": outcome.restored, "error": str(failure) if failure else None}
    _write(document, args.output, "stack", args.json, note)
    if not args.json and outcome.measurements:
        _print_stack(document, outcome.measurements, options.rounds)
    if failure is not None:
        print(f"fleet bench: error: {failure}", file=sys.stderr)
        return ExitCode.FAILED
    failed = [m for m in outcome.measurements if m.failures]
    if failed or (outcome.restored is not None and not outcome.restored.get("ok")):
        return ExitCode.FAILED
    return ExitCode.OK


def _print_stack(document: dict[str, Any], measurements: list[report.Measurement], rounds: int) -> None:
    out = console()
    out.print(report.table(measurements, rounds))
    machine = document["machine"]
    for entry in document["deployments"]:
        deployed = ", ".join(f"{k} {v}" for k, v in entry.get("deployed", {}).items())
        took = f" (deployed in {entry['deploy_seconds']:.0f}s)" if "deploy_seconds" in entry else ""
        out.print(f"{entry['name']}: {deployed}{took}")
    hits = [m.cache_hit_ratio for m in measurements if m.endpoint == "item" and m.cache_hit_ratio is not None]
    if hits:
        out.print(f"cache hits of the item reads: at least {min(hits):.1%}")
    out.print(
        f"machine: {machine['cpus']} CPUs shared by the lab, wrk and every other process; 1-minute load"
        f" {machine['load1_min']}..{machine['load1_max']} (median {machine['load1_median']}) at the runs' starts"
    )
    out.print("[bold]headline (requests/s ratios of this run)[/bold]")
    for line in report.headline(document["ratios"]):
        out.print(f"  {line}")


def run_ansible(args: argparse.Namespace) -> int:
    options = ansible_runs.Options(
        sizes=tuple(args.sizes),
        machines=args.machines,
        settings=tuple(args.settings),
        prefix=args.prefix,
        first_address=args.first_address,
        distro=args.distro,
        keep=args.keep,
        output_dir=DEFAULT_OUTPUT_DIR,
    )
    ansible_runs.check_options(options)
    if os.geteuid() != 0:
        raise FleetError("fleet bench ansible boots lab machines: run it as root")
    note = Progress()
    outcome = ansible_runs.Outcome()
    failure: FleetError | None = None
    try:
        ansible_runs.run(options, note, outcome)
    except FleetError as exc:
        failure = exc
    document = scaling.document(
        outcome.timings, outcome.settle, sizes=options.sizes, cpus=os.cpu_count() or 0, machines=options.machines
    )
    document |= {"started": outcome.started, "error": str(failure) if failure else None}
    _write(document, args.output, "ansible", args.json, note)
    if not args.json and outcome.timings:
        out = console()
        growths = scaling.growth(outcome.timings)
        out.print(scaling.table(growths, sorted(options.sizes)))
        for timing in outcome.timings:
            if not timing.ok or timing.changed:
                out.print(
                    f"not a clean no-change run: {timing.setting} at {timing.hosts} hosts ({timing.changed} changed)"
                )
        machine = document["machine"]
        out.print(f"machine: {machine['cpus']} CPUs, 1-minute load {machine['load1_min']}..{machine['load1_max']}")
        for line in scaling.headline(growths):
            out.print(f"  {line}")
    if failure is not None:
        print(f"fleet bench ansible: error: {failure}", file=sys.stderr)
        return ExitCode.FAILED
    return ExitCode.FAILED if any(not t.ok or t.changed for t in outcome.timings) else ExitCode.OK
