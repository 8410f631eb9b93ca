"""``fleet bench ansible``: how the time of a no-change ``site.yml`` run grows with the fleet.

Boots ``--machines`` lab machines (root) and spreads the largest fleet's inventory hosts
over them (:func:`fleet.bench.scaling.placement`): each inventory host gets an address of
its own on its machine (added in the machine's network namespace, its host key in a
known_hosts file of the run), so Ansible opens its own SSH connections to it exactly as to a
separate machine. Then: a first converge of one host per machine, and for each size,
smallest first, a settling run of that fleet's inventory (it gathers the new hosts' facts;
untimed in the figures), then one timed no-change run per setting. Every run starts without
SSH control masters (a fresh ControlPath directory) and uses a fact cache of the bench's own.
A timed run that changed something is reported as such and left out of the fit. The
machines it booted are taken down at the end unless ``--keep``.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from fleet.bench import scaling
from fleet.bench.playbook import command_line, run_playbook
from fleet.bench.scaling import Timing
from fleet.errors import FleetError
from fleet.ops.inventory import REPO

LAB_GROUP_VARS = REPO / "inventories" / "lab" / "group_vars" / "all"
Note = Callable[[str], None]


@dataclass(frozen=True)
class Options:
    sizes: tuple[int, ...] = scaling.DEFAULT_SIZES
    machines: int = 5
    settings: tuple[str, ...] = scaling.DEFAULT_SETTINGS
    prefix: str = "bench-n"
    first_address: str = "10.231.0.160"
    distro: str = "bookworm"
    keep: bool = False
    output_dir: Path = REPO / ".cache" / "bench"


def check_options(options: Options) -> list[str]:
    """The addresses of the largest fleet; every bad input refused before a machine is touched."""
    if not options.sizes or any(not scaling.MIN_SIZE <= s <= scaling.MAX_SIZE for s in options.sizes):
        raise FleetError(f"--sizes takes fleet sizes from {scaling.MIN_SIZE} to {scaling.MAX_SIZE}")
    if len(set(options.sizes)) != len(options.sizes):
        raise FleetError("--sizes lists a size twice")
    if not scaling.MIN_SIZE <= options.machines <= max(options.sizes):
        raise FleetError(f"--machines must be {scaling.MIN_SIZE}..{max(options.sizes)} (the largest size)")
    unknown = [s for s in options.settings if s not in scaling.SETTINGS]
    if unknown or not options.settings:
        raise FleetError(f"unknown setting {', '.join(unknown) or '(none)'}; known: {', '.join(scaling.SETTINGS)}")
    try:
        first = ipaddress.IPv4Address(options.first_address)
    except ValueError:
        raise FleetError(f"--first-address {options.first_address!r} is not an IPv4 address") from None
    from fleet.lab.config import LabConfig, MachineSpec
    from fleet.lab.errors import LabError

    largest = max(options.sizes)
    addresses = [first + offset for offset in range(largest)]
    cfg = LabConfig.from_env()
    usable = [a for a in cfg.subnet.hosts() if a != cfg.gateway]
    if any(address not in usable for address in addresses):
        raise FleetError(f"{largest} addresses from {first} do not fit the lab subnet {cfg.subnet}")
    try:
        for name in scaling.host_names(options.prefix, largest):
            MachineSpec.build(name, options.distro, None)
    except LabError as exc:
        raise FleetError(str(exc)) from None
    return [str(address) for address in addresses]


def write_inventory(
    directory: Path,
    names: Sequence[str],
    addresses: Sequence[str],
    distro: str,
    known_hosts: str | None = None,
    machine_of: dict[str, str] | None = None,
) -> Path:
    """hosts.yml for the fleet and group_vars/all linking the lab's connection, secrets and firewall."""
    group_vars = directory / "group_vars" / "all"
    group_vars.mkdir(parents=True, exist_ok=True)
    for source in sorted(LAB_GROUP_VARS.glob("*.yml")):
        link = group_vars / source.name
        if not link.exists():
            link.symlink_to(source)
    (directory / "hosts.yml").write_text(
        "---\n# Written by fleet bench ansible.\n"
        + yaml.safe_dump(scaling.inventory(names, addresses, distro, known_hosts, machine_of), sort_keys=False)
    )
    return directory


@dataclass
class Outcome:
    timings: list[Timing] = field(default_factory=list)
    settle: list[Timing] = field(default_factory=list)
    started: str = ""


def _timed(inventory: Path, setting: scaling.Setting, size: int, options: Options, tag: str, note: Note) -> Timing:
    """One run of site.yml with the setting's environment, no control masters left from earlier runs."""
    control = Path(tempfile.mkdtemp(prefix="fleet-bench-cp-"))
    env = {
        **setting.env,
        "ANSIBLE_SSH_CONTROL_PATH_DIR": str(control),
        "ANSIBLE_CACHE_PLUGIN_CONNECTION": str(options.output_dir / "ansible-facts"),
    }
    log = options.output_dir / f"ansible-{size}-{tag}.log"
    load1 = os.getloadavg()[0]
    try:
        played = run_playbook(command_line(str(inventory)), log, env=env)
    finally:
        shutil.rmtree(control, ignore_errors=True)
    timing = Timing(setting.name, size, round(played.seconds, 1), played.changed, played.ok, round(load1, 2))
    state = "ok" if played.ok else f"FAILED (exit {played.returncode}, log {log})"
    note(f"{size} hosts, {tag}: {played.seconds:.0f}s, {played.changed} changed, {state}")
    return timing


BOOT_BATCH = 5


def boot(up: Callable[[list[Any]], object], specs: list[Any], note: Note, batch: int = BOOT_BATCH) -> None:
    """Boot the machines a few at a time, each batch retried once: twenty at once on a busy
    2-core machine outlast the lab's boot timeout (``up`` is idempotent, so a retry goes on)."""
    from fleet.lab.errors import LabError

    for start in range(0, len(specs), batch):
        chunk = specs[start : start + batch]
        try:
            up(chunk)
        except LabError as exc:
            note(f"booting again after: {exc}")
            up(chunk)


def known_hosts_lines(lab_known_hosts: str, machine_of: dict[str, str]) -> list[str]:
    """A known_hosts line for every address: the key the lab recorded for the address's machine."""
    keys: dict[str, list[str]] = {}
    for line in lab_known_hosts.splitlines():
        address, _, key = line.partition(" ")
        if key:
            keys.setdefault(address, []).append(key)
    lines = []
    for address, machine in machine_of.items():
        if machine not in keys:
            raise FleetError(f"the lab's known_hosts has no key for {machine}")
        lines += [f"{address} {key}" for key in keys[machine]]
    return lines


def add_address(machine: str, address: str, prefixlen: int) -> None:
    """One more address on the machine's eth0 (its own network namespace), if it is not there yet."""
    import json

    from fleet.lab.system import run as lab_run

    shown = json.loads(lab_run(["ip", "-n", machine, "-j", "-4", "addr", "show", "dev", "eth0"]) or "[]")
    present = {info["local"] for link in shown for info in link.get("addr_info", [])}
    if address not in present:
        lab_run(["ip", "-n", machine, "addr", "add", f"{address}/{prefixlen}", "dev", "eth0"])


def run(options: Options, note: Note, outcome: Outcome) -> None:
    from fleet.lab import operations
    from fleet.lab.config import LabConfig, MachineSpec

    addresses = check_options(options)
    largest = max(options.sizes)
    names = scaling.host_names(options.prefix, largest)
    where = scaling.placement(largest, options.machines)
    machines = names[: options.machines]
    specs = [
        MachineSpec.build(n, options.distro, ipaddress.IPv4Address(a))
        for n, a in zip(machines, addresses[: options.machines], strict=True)
    ]
    cfg = LabConfig.from_env()
    running_before = {status.name for status in operations.status(cfg) if status.running}
    outcome.started = datetime.now(UTC).isoformat(timespec="seconds")
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    base = options.output_dir / f"ansible-{stamp}"
    note(
        f"booting {len(machines)} lab machines ({machines[0]}..{machines[-1]}) for up to {largest} inventory hosts"
        f" ({addresses[0]}..{addresses[-1]})"
    )
    try:
        boot(lambda batch: operations.up(cfg, batch, log=note), specs, note)
        for index in range(options.machines, largest):
            add_address(machines[where[index]], addresses[index], cfg.subnet.prefixlen)
        machine_of = {addresses[i]: addresses[where[i]] for i in range(largest)}
        base.mkdir(parents=True, exist_ok=True)
        known = base / "known_hosts"
        known.write_text("".join(line + "\n" for line in known_hosts_lines(cfg.known_hosts.read_text(), machine_of)))
        first = write_inventory(base / "machines", machines, addresses[: options.machines], options.distro, str(known))
        note(f"first converge of the {len(machines)} machines, one inventory host each (untimed)")
        outcome.settle.append(_timed(first, scaling.SETTINGS["bundle"], len(machines), options, "first", note))
        if not outcome.settle[-1].ok:
            raise FleetError(f"the first converge failed: see its log in {options.output_dir}")
        for size in sorted(options.sizes):
            directory = write_inventory(
                base / f"{size}-hosts", names[:size], addresses[:size], options.distro, str(known), machine_of
            )
            note(f"{size} hosts: settling run (facts of the new hosts; the timed runs are then no-change runs)")
            outcome.settle.append(_timed(directory, scaling.SETTINGS["bundle"], size, options, "settle", note))
            if not outcome.settle[-1].ok:
                raise FleetError(f"the settling run at {size} hosts failed: see its log in {options.output_dir}")
            for name in options.settings:
                outcome.timings.append(_timed(directory, scaling.SETTINGS[name], size, options, name, note))
    finally:
        created = [n for n in machines if n not in running_before]
        if created and not options.keep:
            note(f"taking down the {len(created)} machines this run booted")
            operations.down(cfg, created, log=lambda _line: None)
