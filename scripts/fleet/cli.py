"""`fleet`: the one command line of fastapi-fleet.

Fleet-wide commands read the inventory through `ansible-inventory --list` and act on all
hosts or an Ansible pattern (-l) in parallel over SSH. Exit codes, for every command:
0 all good, 1 something is down or failed, 2 bad input (nothing was changed),
3 a host could not be reached (the others are still reported), 130 interrupted.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from fleet.errors import ExitCode, FleetError

Handler = Callable[[argparse.Namespace], int]


def build_parser() -> argparse.ArgumentParser:
    # Imported here so that `fleet --help` and argument errors stay fast.
    from fleet.bench import cli as bench
    from fleet.docs import cli as docs
    from fleet.lab import cli as lab
    from fleet.load import cli as load
    from fleet.ops import logs, releases, run, smoke, status
    from fleet.ops.options import common_options

    parser = argparse.ArgumentParser(
        prog="fleet", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = common_options()
    for module in (status, logs, releases, smoke, run):
        module.register(sub, common)
    for module in (lab, load, bench, docs):
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Handler = args.handler
    try:
        return int(handler(args))
    except FleetError as exc:
        print(f"fleet {args.command}: error: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    except BrokenPipeError:
        # The reader went away (`fleet status | head`): nothing left to say, and no traceback.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return ExitCode.FAILED
    except KeyboardInterrupt:
        hint = "; run `fleet lab down` to clean up what was made" if args.command == "lab" else ""
        print(f"fleet {args.command}: interrupted{hint}", file=sys.stderr)
        return ExitCode.INTERRUPTED


if __name__ == "__main__":
    raise SystemExit(main())
