"""``fleet load``: sustained load on one URL, printed as sent / 2xx / non-2xx / errors / p99.

Exits 0 only when every response was 2xx and no socket error happened (``--allow-failures``
prints the line and exits 0 anyway).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from fleet.load.run import run_load
from fleet.load.targets import DEFAULT_ALLOWED_NETWORKS, LoadError


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("url", help="e.g. https://10.231.0.21/health")
    parser.add_argument("-d", "--duration", type=int, default=60, help="seconds (default 60, at most 600)")
    parser.add_argument("-c", "--connections", type=int, default=64, help="open connections (default 64)")
    parser.add_argument("-t", "--threads", type=int, default=2, help="wrk threads (default 2)")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds before a request counts as timed out")
    parser.add_argument("-H", "--header", action="append", default=[], help="extra header 'Name: value'")
    parser.add_argument(
        "--allow",
        action="append",
        help=f"network the target may be in (repeatable; default {', '.join(DEFAULT_ALLOWED_NETWORKS)})",
    )
    parser.add_argument("--allow-failures", action="store_true", help="exit 0 even with non-2xx or errors")


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "load",
        help="sustained load on one lab URL: sent / 2xx / non-2xx / errors / p99",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_arguments(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    headers = {}
    for header in args.header:
        name, sep, value = header.partition(":")
        if not sep:
            print(f"fleet load: bad header {header!r} (want 'Name: value')", file=sys.stderr)
            return 2
        headers[name.strip()] = value.strip()
    try:
        result = run_load(
            args.url,
            duration=args.duration,
            connections=args.connections,
            threads=args.threads,
            timeout=args.timeout,
            headers=headers,
            allow=tuple(args.allow) if args.allow else DEFAULT_ALLOWED_NETWORKS,
        )
    except LoadError as exc:
        print(f"fleet load: {exc}", file=sys.stderr)
        return 2
    print(result.line())
    return 0 if result.clean or args.allow_failures else 1


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m fleet.load``: the same as ``fleet load``."""
    parser = argparse.ArgumentParser(prog="fleet load", description=__doc__)
    _add_arguments(parser)
    return run(parser.parse_args(argv))
