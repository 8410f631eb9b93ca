"""How `fleet` prints: rich tables for people, JSON for programs, errors per host."""

from __future__ import annotations

import json
import sys

from rich.console import Console
from rich.text import Text

from fleet.errors import ExitCode
from fleet.ops.remote import Result

GOOD = "green"
BAD = "bold red"
MUTED = "dim"


def console() -> Console:
    """stdout; wide enough for the tables when it is not a terminal (pipes, tests, CI logs)."""
    terminal = sys.stdout.isatty()
    return Console(file=sys.stdout, width=None if terminal else 200, highlight=False, soft_wrap=not terminal)


def print_json(document: object) -> None:
    json.dump(document, sys.stdout, indent=2, sort_keys=False)
    sys.stdout.write("\n")


def mark(ok: bool | None, text: str) -> Text:
    """A cell coloured by outcome (None: not applicable)."""
    return Text(text, style=MUTED if ok is None else GOOD if ok else BAD)


def unreachable_lines(results: list[Result]) -> list[str]:
    return [f"{r.host}: UNREACHABLE: {r.error}" for r in results if not r.reached]


def report_unreachable(out: Console, results: list[Result]) -> None:
    for line in unreachable_lines(results):
        out.print(Text(line, style=BAD))


def exit_code(results: list[Result], failed: bool) -> int:
    """UNREACHABLE wins over FAILED: a host nobody could look at is the bigger unknown."""
    if any(not r.reached for r in results):
        return ExitCode.UNREACHABLE
    return ExitCode.FAILED if failed else ExitCode.OK
