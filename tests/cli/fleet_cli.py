"""The installed `fleet` console script, run as users run it (imported by the CLI tests by name:
conftest modules of different test folders share one module name)."""

import subprocess
import sys
from pathlib import Path

from fleet.ops.inventory import REPO

FLEET = Path(sys.executable).parent / "fleet"


def fleet(*argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """The installed `fleet` console script, as users run it."""
    return subprocess.run([FLEET, *argv], capture_output=True, text=True, timeout=timeout, cwd=REPO)
