"""What every `fleet` command reports to its user: one error type and one set of exit codes."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Exit codes shared by every `fleet` command."""

    OK = 0
    #: Something is down or failed: a service, a check, a remote command.
    FAILED = 1
    #: Bad input or environment, reported before anything changed (argparse uses 2 too).
    USAGE = 2
    #: At least one host could not be reached; the others were still handled and shown.
    UNREACHABLE = 3
    INTERRUPTED = 130


class FleetError(Exception):
    """A problem the user can act on: printed as one line without a traceback, exit code 2."""
