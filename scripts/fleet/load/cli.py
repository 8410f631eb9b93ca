"""``fleet load``: load on the lab (or loopback), printed as one line of exact counts.

``fleet load URL`` (or ``fleet load wrk URL``): wrk, closed loop, as fast as the connections
go, on one URL: sent / 2xx / non-2xx / socket errors / p99.

``fleet load steady URL``: open loop at a fixed rate (``--rate`` per second) against the
app's base URL, the ``items`` mix by default (POST, GET, PATCH of the items it creates,
and /health): sent / 2xx / non-2xx / errors by kind / max gap between successes.

Both exit 0 only when every request succeeded (``--allow-failures`` prints the line and
exits 0 anyway), 2 on bad input.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from fleet.load.mix import MIXES
from fleet.load.run import run_load
from fleet.load.steady import MAX_DURATION, MAX_IN_FLIGHT, MAX_RATE, run_steady
from fleet.load.targets import DEFAULT_ALLOWED_NETWORKS, LoadError

DEFAULT_MODE = "wrk"


class _ModeOrUrl(argparse._SubParsersAction):
    """Subcommands whose first argument may also be the URL of the default mode (``fleet load URL``)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.choices = None  # any word passes; __call__ picks the default mode for a URL

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[object] | None,
        option_string: str | None = None,
    ) -> None:
        words = list(values or [])
        if not words or words[0] not in self._name_parser_map:
            words = [DEFAULT_MODE, *words]
        super().__call__(parser, namespace, words, option_string)


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-H", "--header", action="append", default=[], help="extra header 'Name: value'")
    parser.add_argument(
        "--allow",
        action="append",
        help=f"network the target may be in (repeatable; default {', '.join(DEFAULT_ALLOWED_NETWORKS)})",
    )
    parser.add_argument("--allow-failures", action="store_true", help="exit 0 even with failed requests")


def _add_wrk(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("url", help="e.g. https://10.231.0.21/health")
    parser.add_argument("-d", "--duration", type=int, default=60, help="seconds (default 60, at most 600)")
    parser.add_argument("-c", "--connections", type=int, default=64, help="open connections (default 64)")
    parser.add_argument("-t", "--threads", type=int, default=2, help="wrk threads (default 2)")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds before a request counts as timed out")
    _add_common(parser)
    parser.set_defaults(handler=run)


def _add_steady(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("url", help="the app's base URL, e.g. https://10.231.0.21")
    parser.add_argument(
        "-r", "--rate", type=float, default=20.0, help=f"requests per second (default 20, at most {MAX_RATE:g})"
    )
    parser.add_argument(
        "-d", "--duration", type=float, default=60.0, help=f"seconds (default 60, at most {MAX_DURATION:g})"
    )
    parser.add_argument("--mix", choices=sorted(MIXES), default="items", help="what to send (default items)")
    parser.add_argument(
        "--in-flight",
        type=int,
        default=32,
        help=f"requests waiting at most; more are skipped (default 32, at most {MAX_IN_FLIGHT})",
    )
    parser.add_argument(
        "--connections",
        type=int,
        help="connections at most; requests beyond wait for one within --timeout (default: --in-flight)",
    )
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds for a whole answer (default 5)")
    parser.add_argument("--ca-file", help="verify TLS against this CA (default: not verified, as in the lab)")
    _add_common(parser)
    parser.set_defaults(handler=run_steady_command)


def _add_modes(parser: argparse.ArgumentParser) -> None:
    modes = parser.add_subparsers(dest="mode", action=_ModeOrUrl, metavar="{wrk,steady} | URL")
    _add_wrk(modes.add_parser("wrk", help="wrk on one URL at full speed (the default: fleet load URL)"))
    _add_steady(modes.add_parser("steady", help="a fixed rate of mixed GET/POST/PATCH against the app"))


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "load",
        help="load on a lab URL: sent / 2xx / non-2xx / errors (wrk, or steady at a fixed rate)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_modes(parser)


def _headers(args: argparse.Namespace) -> dict[str, str]:
    headers = {}
    for header in args.header:
        name, sep, value = header.partition(":")
        if not sep:
            raise LoadError(f"bad header {header!r} (want 'Name: value')")
        headers[name.strip()] = value.strip()
    return headers


def _shared(args: argparse.Namespace) -> dict[str, Any]:
    """The options both modes take: timeout, headers, allowed networks."""
    allow = tuple(args.allow) if args.allow else DEFAULT_ALLOWED_NETWORKS
    return {"timeout": args.timeout, "headers": _headers(args), "allow": allow}


class _Result(Protocol):
    @property
    def clean(self) -> bool: ...

    def line(self) -> str: ...


def _report(command: str, load: Callable[[], _Result], allow_failures: bool) -> int:
    """Run the load, print its line; 0 clean (or failures allowed), 1 failures, 2 could not run."""
    try:
        result = load()
    except LoadError as exc:
        print(f"{command}: {exc}", file=sys.stderr)
        return 2
    print(result.line())
    return 0 if result.clean or allow_failures else 1


def run(args: argparse.Namespace) -> int:
    return _report(
        "fleet load",
        lambda: run_load(
            args.url,
            duration=args.duration,
            connections=args.connections,
            threads=args.threads,
            **_shared(args),
        ),
        args.allow_failures,
    )


def run_steady_command(args: argparse.Namespace) -> int:
    return _report(
        "fleet load steady",
        lambda: run_steady(
            args.url,
            rate=args.rate,
            duration=args.duration,
            mix=args.mix,
            max_in_flight=args.in_flight,
            connections=args.connections,
            ca_file=args.ca_file,
            **_shared(args),
        ),
        args.allow_failures,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m fleet.load``: the same as ``fleet load``."""
    parser = argparse.ArgumentParser(
        prog="fleet load", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    _add_modes(parser)
    args = parser.parse_args(argv)
    return int(args.handler(args))
