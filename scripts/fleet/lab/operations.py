"""The lab's commands: bring machines up, take them down, list them, describe them."""

from __future__ import annotations

import ipaddress
import shutil
from collections.abc import Callable
from dataclasses import dataclass

from fleet.lab import aptcache, images, machines, network
from fleet.lab.config import LAB_USER, LabConfig, MachineSpec, check_unique
from fleet.lab.errors import LabError
from fleet.lab.state import LabState, MachineRecord, locked
from fleet.lab.system import check_inotify_room, require_root, require_tools, run

Log = Callable[[str], None]


@dataclass(frozen=True)
class MachineStatus:
    """What `list` shows for a machine."""

    name: str
    distro: str
    address: str
    running: bool


def plan_addresses(
    cfg: LabConfig, specs: list[MachineSpec], state: LabState, host_addresses: set[ipaddress.IPv4Address]
) -> dict[str, ipaddress.IPv4Address]:
    """Give every machine its address: existing ones keep theirs, new ones get the given or next free one.

    Raises LabError before anything changes when a name exists with other settings or an address is taken.
    """
    check_unique(specs)
    taken = {ipaddress.IPv4Address(rec.address): rec.name for rec in state.machines.values()}
    taken.update({addr: "the host" for addr in host_addresses if addr != cfg.gateway})
    result: dict[str, ipaddress.IPv4Address] = {}
    for spec in specs:
        existing = state.machines.get(spec.name)
        if existing is not None:
            if existing.distro != spec.distro or (spec.address and str(spec.address) != existing.address):
                raise LabError(
                    f"machine {spec.name} exists as {existing.distro} at {existing.address}; "
                    f"run `fleet lab down {spec.name}` first to recreate it differently"
                )
            result[spec.name] = ipaddress.IPv4Address(existing.address)
        elif spec.address is not None:
            cfg.check_address(spec.address)
            if spec.address in taken:
                raise LabError(f"address {spec.address} for {spec.name} is already taken by {taken[spec.address]}")
            result[spec.name] = spec.address
    used = set(taken) | set(result.values())
    free = (addr for addr in cfg.subnet.hosts() if addr > cfg.gateway + 8 and addr not in used)
    for spec in specs:
        if spec.name not in result:
            try:
                result[spec.name] = next(free)
            except StopIteration:
                raise LabError(f"no free address left in {cfg.subnet}") from None
    return result


def ensure_key(cfg: LabConfig) -> str:
    """The lab-only SSH key pair, made on first use; returns the public key."""
    cfg.ssh_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not cfg.private_key.exists():
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "fastapi-fleet-lab", "-f", str(cfg.private_key)])
    return cfg.private_key.with_suffix(".pub").read_text()


def _write_known_hosts(cfg: LabConfig, entries: dict[str, str]) -> None:
    lines = [f"{address} {key}" for address, key in sorted(entries.items())]
    cfg.known_hosts.write_text("".join(line + "\n" for line in lines))


def _read_known_hosts(cfg: LabConfig) -> dict[str, str]:
    if not cfg.known_hosts.exists():
        return {}
    pairs = (line.split(maxsplit=1) for line in cfg.known_hosts.read_text().splitlines() if line.strip())
    return {address: key for address, key in pairs}


def is_running(cfg: LabConfig, name: str) -> bool:
    return bool(machines.nspawn_pids(machines.MachinePaths(cfg, name)))


def up(cfg: LabConfig, specs: list[MachineSpec], log: Log = print) -> list[MachineRecord]:
    """Create and boot the machines that are not running yet; idempotent."""
    require_root()
    require_tools()
    with locked(cfg.state_dir):
        state = LabState.load(cfg.state_file)
        addresses = plan_addresses(cfg, specs, state, network.addresses_in_use(cfg))
        public_key = ensure_key(cfg)
        for distro in sorted({spec.distro for spec in specs}):
            images.ensure_image(cfg, distro, log=log)
        before = network.ensure_network(cfg)
        if before is not None and state.ip_forward_before is None:
            state.ip_forward_before = before
        state.save(cfg.state_file)
        check_inotify_room(sum(1 for spec in specs if not is_running(cfg, spec.name)))
        proxy = aptcache.ensure_running(cfg)
        known = _read_known_hosts(cfg)
        started: list[MachineRecord] = []
        for spec in specs:
            record = state.machines.get(spec.name) or MachineRecord(
                spec.name, spec.distro, str(addresses[spec.name]), network.veth_name(spec.name)
            )
            state.machines[spec.name] = record
            state.save(cfg.state_file)
            if is_running(cfg, spec.name):
                log(f"{spec.name}: already running at {record.address}")
                continue
            paths = machines.MachinePaths(cfg, spec.name)
            network.delete_machine_netns(spec.name, record.veth)
            network.create_machine_netns(cfg, spec.name, record.veth, ipaddress.IPv4Address(record.address))
            machines.mount_root(paths, images.image_path(cfg, spec.distro))
            known[record.address] = machines.seed_identity(
                paths, spec.name, ipaddress.IPv4Address(record.address), public_key
            )
            _write_known_hosts(cfg, known)
            aptcache.configure_machine(paths.root, proxy)
            record.pid = machines.boot(paths, spec.name)
            state.save(cfg.state_file)
            started.append(record)
        for record in started:
            machines.wait_ready(cfg, record.name, record.address)
            log(f"{record.name}: up ({record.distro}) at {record.address}")
        return [state.machines[spec.name] for spec in specs]


def known_machine_names(cfg: LabConfig, state: LabState) -> set[str]:
    """Every machine the lab knows of: in its state file or with a directory left on disk."""
    on_disk = {p.name for p in cfg.machines_dir.iterdir() if p.is_dir()} if cfg.machines_dir.is_dir() else set()
    return set(state.machines) | on_disk


def down(cfg: LabConfig, names: list[str] | None, *, purge: bool = False, log: Log = print) -> None:
    """Remove the named machines (all when None); with none left, remove the network too."""
    require_root()
    with locked(cfg.state_dir):
        state = LabState.load(cfg.state_file)
        known = known_machine_names(cfg, state)
        targets = sorted(known) if names is None else names
        for name in targets:
            if name not in known:
                log(f"{name}: no such machine (nothing to do)")
        targets = [name for name in targets if name in known]
        machines.stop([machines.MachinePaths(cfg, name) for name in targets])
        hosts = _read_known_hosts(cfg)
        for name in targets:
            record = state.machines.pop(name, None)
            paths = machines.MachinePaths(cfg, name)
            machines.unmount(paths)
            machines.remove_cgroups(name)
            shutil.rmtree(paths.base, ignore_errors=True)
            network.delete_machine_netns(name, record.veth if record else network.veth_name(name))
            if record is not None:
                hosts.pop(record.address, None)
            log(f"{name}: removed")
        if cfg.ssh_dir.exists():
            _write_known_hosts(cfg, hosts)
        if not state.machines:
            for veth in network.lab_veths():
                run(["ip", "link", "del", veth], check=False)
            aptcache.stop(cfg)
            network.teardown_network(cfg, state.ip_forward_before)
            machines.remove_cgroups()
            state.ip_forward_before = None
        state.save(cfg.state_file)
    if purge and not state.machines:
        shutil.rmtree(cfg.state_dir)
        log(f"purged {cfg.state_dir} (images, keys, state)")


def status(cfg: LabConfig) -> list[MachineStatus]:
    """Every recorded machine and whether its container is running."""
    state = LabState.load(cfg.state_file)
    return [
        MachineStatus(rec.name, rec.distro, rec.address, is_running(cfg, rec.name))
        for rec in sorted(state.machines.values(), key=lambda r: r.name)
    ]


def instance_configs(cfg: LabConfig, names: list[str] | None = None) -> list[dict[str, str]]:
    """Connection details per machine, in molecule's instance-config shape."""
    state = LabState.load(cfg.state_file)
    chosen = sorted(state.machines) if names is None else names
    missing = [name for name in chosen if name not in state.machines]
    if missing:
        raise LabError("no such machine: " + ", ".join(missing))
    return [
        {
            "instance": name,
            "address": state.machines[name].address,
            "user": LAB_USER,
            "port": "22",
            "identity_file": str(cfg.private_key),
            "known_hosts": str(cfg.known_hosts),
            "distro": state.machines[name].distro,
        }
        for name in chosen
    ]


def inventory(cfg: LabConfig, names: list[str] | None = None) -> dict[str, object]:
    """An Ansible YAML inventory for the machines (all in group `lab`)."""
    hosts = {
        item["instance"]: {
            "ansible_host": item["address"],
            "ansible_user": item["user"],
            "ansible_ssh_private_key_file": item["identity_file"],
            "ansible_ssh_common_args": f"-o UserKnownHostsFile={item['known_hosts']} -o StrictHostKeyChecking=yes",
            "lab_distro": item["distro"],
        }
        for item in instance_configs(cfg, names)
    }
    return {"all": {"children": {"lab": {"hosts": hosts}}}}


def ssh_command(cfg: LabConfig, name: str, command: list[str]) -> list[str]:
    """The ssh command line for a machine, with an optional remote command."""
    (item,) = instance_configs(cfg, [name])
    return [*machines.ssh_base(cfg, item["address"]), *command]
