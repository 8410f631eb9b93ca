"""`fleet lab`: create, list and destroy the lab's Debian machines."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import yaml

from fleet.lab import images, operations
from fleet.lab.config import DISTROS, LabConfig, MachineSpec, parse_address
from fleet.lab.errors import LabError


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "lab",
        help="the lab: real Debian machines (root)",
        description="Real Debian machines (systemd-nspawn, own network namespace, SSH) for trying and "
        "testing fastapi-fleet. Settings: FLEET_LAB_DIR, FLEET_LAB_BRIDGE, FLEET_LAB_SUBNET, FLEET_LAB_MIRROR.",
    )
    parser.set_defaults(handler=run)
    sub = parser.add_subparsers(dest="lab_command", required=True, metavar="VERB")

    up = sub.add_parser("up", help="create and boot machines (idempotent)")
    up.add_argument("machines", nargs="*", metavar="NAME[:DISTRO[:ADDRESS]]", help="machines to bring up")
    up.add_argument("--inventory", "-i", help="also bring up every host of this Ansible inventory that sets lab_distro")

    down = sub.add_parser("down", help="stop and remove machines; with none left, the bridge and NAT too")
    down.add_argument("machines", nargs="*", metavar="NAME")
    down.add_argument("--all", action="store_true", help="remove every lab machine")
    down.add_argument("--purge", action="store_true", help="with --all: also delete cached images and the lab key")

    sub.add_parser("list", help="show machines and whether they run")

    inv = sub.add_parser("inventory", help="print connection details of running machines")
    inv.add_argument("machines", nargs="*", metavar="NAME")
    inv.add_argument(
        "--format",
        choices=("yaml", "json", "molecule"),
        default="yaml",
        help="an Ansible inventory (yaml), or molecule instance config (molecule/json)",
    )
    inv.add_argument("--output", "-o", help="write to this file instead of stdout")

    ssh = sub.add_parser("ssh", help="open a shell or run a command on a machine")
    ssh.add_argument("machine", metavar="NAME")
    ssh.add_argument("remote", nargs=argparse.REMAINDER, help="command to run")

    image = sub.add_parser("image", help="build (or rebuild) a cached Debian image")
    image.add_argument("distro", choices=DISTROS)
    image.add_argument("--rebuild", action="store_true")


def specs_from_inventory(path: str) -> list[MachineSpec]:
    """Hosts of an Ansible inventory that carry `lab_distro`, with their `ansible_host` address."""
    proc = subprocess.run(["ansible-inventory", "-i", path, "--list"], capture_output=True, text=True, check=False)  # noqa: S603,S607
    if proc.returncode != 0:
        raise LabError(f"cannot read inventory {path}: {proc.stderr.strip()}")
    hostvars: dict[str, dict[str, object]] = json.loads(proc.stdout).get("_meta", {}).get("hostvars", {})
    specs = [
        MachineSpec.build(
            name,
            str(hv["lab_distro"]),
            parse_address(str(hv["ansible_host"]), f"host {name}") if "ansible_host" in hv else None,
        )
        for name, hv in sorted(hostvars.items())
        if "lab_distro" in hv
    ]
    if not specs:
        raise LabError(f"inventory {path} has no host with lab_distro set")
    return specs


def _emit(text: str, output: str | None) -> None:
    if output:
        with open(output, "w") as handle:
            handle.write(text)
    else:
        sys.stdout.write(text)


def run(args: argparse.Namespace) -> int:
    return dispatch(args, LabConfig.from_env())


def dispatch(args: argparse.Namespace, cfg: LabConfig) -> int:
    if args.lab_command == "up":
        specs = [MachineSpec.parse(text) for text in args.machines]
        if args.inventory:
            specs += specs_from_inventory(args.inventory)
        if not specs:
            raise LabError("name machines to bring up (NAME[:DISTRO[:ADDRESS]]) or pass --inventory")
        operations.up(cfg, specs)
    elif args.lab_command == "down":
        if args.machines and args.all:
            raise LabError("give machine names or --all, not both")
        if not args.machines and not args.all:
            raise LabError("name the machines to remove, or pass --all")
        if args.purge and not args.all:
            raise LabError("--purge only goes with --all")
        operations.down(cfg, None if args.all else args.machines, purge=args.purge)
    elif args.lab_command == "list":
        rows = operations.status(cfg)
        print(f"{'NAME':<20} {'DISTRO':<10} {'ADDRESS':<16} STATE")
        for row in rows:
            print(f"{row.name:<20} {row.distro:<10} {row.address:<16} {'running' if row.running else 'stopped'}")
    elif args.lab_command == "inventory":
        names = args.machines or None
        if args.format == "yaml":
            _emit(yaml.safe_dump(operations.inventory(cfg, names), sort_keys=False), args.output)
        elif args.format == "molecule":
            _emit(yaml.safe_dump(operations.instance_configs(cfg, names), sort_keys=False), args.output)
        else:
            _emit(json.dumps(operations.instance_configs(cfg, names), indent=2) + "\n", args.output)
    elif args.lab_command == "ssh":
        command = operations.ssh_command(cfg, args.machine, args.remote)
        os.execvp(command[0], command)  # noqa: S606
    elif args.lab_command == "image":
        images.ensure_image(cfg, args.distro, rebuild=args.rebuild)
    return 0
