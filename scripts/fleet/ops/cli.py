"""`fleet-ops`: look at and act on a running fleet over SSH, using an Ansible inventory."""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence

from fleet.ops.errors import OpsError
from fleet.ops.inventory import HostConn, load_hosts
from fleet.ops.remote import Outcome, run_everywhere


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fleet-ops", description=__doc__)
    parser.add_argument("-i", "--inventory", default="inventories/lab", help="Ansible inventory (default: the lab)")
    parser.add_argument("--vault-password-file", help="for inventories with vaulted variables")
    sub = parser.add_subparsers(dest="command", required=True)
    status = sub.add_parser("status", help="state of each host's fleet services (systemctl is-active)")
    status.add_argument("pattern", nargs="?", default="all", help="Ansible host pattern")
    health = sub.add_parser("health", help="the app's /ready on every app host, asked from the host itself")
    health.add_argument("pattern", nargs="?", default="app")
    health.add_argument("--port", type=int, default=8000)
    logs = sub.add_parser("logs", help="recent journal lines of a unit")
    logs.add_argument("unit")
    logs.add_argument("pattern", nargs="?", default="all")
    logs.add_argument("-n", "--lines", type=int, default=50)
    run = sub.add_parser("run", help="run a shell command on every matching host")
    run.add_argument("pattern")
    run.add_argument("remote", nargs=argparse.REMAINDER, help="-- COMMAND ...")
    return parser


def _print(outcomes: list[Outcome]) -> int:
    for outcome in outcomes:
        mark = "ok" if outcome.ok else "FAILED"
        print(f"== {outcome.host}: {mark}")
        for line in (outcome.stdout + outcome.stderr).rstrip().splitlines():
            print(f"   {line}")
    return 0 if all(o.ok for o in outcomes) else 1


def _status_command(host: HostConn) -> str:
    services = host.services or ["ssh"]
    return "; ".join(f"printf '%-16s %s\\n' {s} \"$(systemctl is-active {s})\"" for s in services) + "; true"


def dispatch(args: argparse.Namespace) -> int:
    if args.command == "run":
        remote = args.remote[1:] if args.remote[:1] == ["--"] else args.remote
        if not remote:
            raise OpsError("give the command to run after --")
        command = shlex.join(remote)
        return _print(
            run_everywhere(load_hosts(args.inventory, args.pattern, args.vault_password_file), lambda _: command)
        )
    hosts = load_hosts(args.inventory, args.pattern, args.vault_password_file)
    if args.command == "status":
        outcomes = run_everywhere(hosts, _status_command)
        failed = [
            o for o in outcomes if not o.ok or any(line.split()[-1] != "active" for line in o.stdout.splitlines())
        ]
        _print(outcomes)
        return 1 if failed else 0
    if args.command == "health":
        return _print(run_everywhere(hosts, lambda h: f"curl -fsS --max-time 5 http://{h.address}:{args.port}/ready"))
    if args.lines <= 0:
        raise OpsError("--lines must be positive")
    return _print(
        run_everywhere(hosts, lambda _: f"journalctl -u {shlex.quote(args.unit)} -n {args.lines} --no-pager", sudo=True)
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return dispatch(args)
    except OpsError as exc:
        print(f"fleet-ops: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
