"""`fleet run -- CMD`: an ad-hoc command on every matching host, output grouped by host."""

from __future__ import annotations

import argparse
import shlex

from rich.text import Text

from fleet.errors import FleetError
from fleet.ops.options import select_hosts
from fleet.ops.output import GOOD, console, exit_code, print_json, report_unreachable
from fleet.ops.remote import as_root, run_everywhere


def command_line(words: list[str]) -> str:
    """One word is a shell command line as typed (pipes work); several are quoted as given, like ssh."""
    words = words[1:] if words[:1] == ["--"] else words
    if not words or not "".join(words).strip():
        raise FleetError("give the command to run after --, e.g. fleet run -- uptime")
    return words[0] if len(words) == 1 else shlex.join(words)


def run(args: argparse.Namespace) -> int:
    command = command_line(args.remote)
    hosts = select_hosts(args)
    results = run_everywhere(
        hosts,
        lambda h: as_root(h, command) if args.become else command,
        label="run",
        forks=args.forks,
        timeout=args.timeout,
        verbose=args.verbose,
    )
    failed = any(r.reached and not r.ok for r in results)
    if args.json:
        print_json(
            {
                "command": command,
                "ok": all(r.ok for r in results),
                "hosts": [
                    {"host": r.host, "exit_code": r.exit_code, "stdout": r.stdout, "stderr": r.stderr, "error": r.error}
                    for r in results
                ],
            }
        )
        return exit_code(results, failed)
    out = console()
    for r in results:
        outcome = f"exit {r.exit_code}" if r.reached else "UNREACHABLE"
        style = GOOD if r.ok else "bold red"
        out.print(Text(f"── {r.host}: {outcome}", style=style))
        if r.stdout:
            out.out(r.stdout.rstrip("\n"), highlight=False)
        if r.stderr:
            out.out(r.stderr.rstrip("\n"), style="yellow", highlight=False)
        if r.error:
            out.out(r.error, style="bold red", highlight=False)
    ok = sum(r.ok for r in results)
    out.print(f"{ok} of {len(results)} hosts ok")
    report_unreachable(out, results)
    return exit_code(results, failed)


def register(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = sub.add_parser(
        "run",
        parents=[common],
        help="run a command on every matching host, output grouped by host",
        description="Run CMD on every host matching -l (default all), in parallel. One argument after -- is "
        "a shell command line (fleet run -- 'df -h / | tail -1'); several are quoted as given. Exit 1 when "
        "the command fails somewhere, 3 when a host is unreachable.",
    )
    parser.add_argument("-b", "--become", action="store_true", help="run as root (sudo -n) where the user is not root")
    parser.add_argument("--timeout", type=float, default=120, help="seconds the command may take (default 120)")
    parser.add_argument("remote", nargs=argparse.REMAINDER, metavar="-- CMD", help="the command")
    parser.set_defaults(handler=run)
