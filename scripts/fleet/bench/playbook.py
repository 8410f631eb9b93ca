"""``ansible-playbook`` runs of the benchmarks: timed, logged to a file, their recap read back.

Both benchmarks deploy as a user does: ``ansible-playbook -i INVENTORY playbooks/site.yml``
from the repository (its ``ansible.cfg`` applies), extra variables as ``-e @FILE`` or
``-e JSON``, and environment overrides for Ansible's own settings (``ANSIBLE_FORKS`` ...).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from fleet.errors import FleetError
from fleet.ops.inventory import REPO

SITE = REPO / "playbooks" / "site.yml"
# A deploy (or a no-change run) that takes longer than this is killed and reported.
PLAY_TIMEOUT = 3600

_RECAP_LINE = re.compile(r"^(?P<host>\S+)\s+:\s+(?P<counts>(?:\w+=\d+\s*)+)$")


@dataclass(frozen=True)
class HostRecap:
    """One host's line of PLAY RECAP."""

    ok: int = 0
    changed: int = 0
    unreachable: int = 0
    failed: int = 0
    skipped: int = 0
    rescued: int = 0
    ignored: int = 0


def parse_recap(output: str) -> dict[str, HostRecap]:
    """The hosts' counts from the last PLAY RECAP of an ansible-playbook output."""
    start = output.rfind("PLAY RECAP")
    if start < 0:
        return {}
    recap: dict[str, HostRecap] = {}
    for line in output[start:].splitlines()[1:]:
        match = _RECAP_LINE.match(line.strip())
        if match is None:
            if recap:
                break
            continue
        counts = dict(pair.split("=") for pair in match["counts"].split())
        known = {name: int(value) for name, value in counts.items() if name in HostRecap.__dataclass_fields__}
        recap[match["host"]] = HostRecap(**known)
    return recap


@dataclass(frozen=True)
class PlaybookRun:
    """A finished ansible-playbook run."""

    command: tuple[str, ...]
    returncode: int
    seconds: float
    recap: dict[str, HostRecap]
    log: Path
    tail: str = field(default="", repr=False)

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and all(r.failed == 0 and r.unreachable == 0 for r in self.recap.values())

    @property
    def changed(self) -> int:
        """Tasks reported changed, summed over the hosts."""
        return sum(r.changed for r in self.recap.values())


def command_line(
    inventory: str | None,
    playbook: Path = SITE,
    *,
    extra_vars: Sequence[str | Mapping[str, object]] = (),
    limit: str | None = None,
    vault_password_file: str | None = None,
) -> list[str]:
    """ansible-playbook's argument list (no inventory: ansible.cfg's); extra vars are ``@file``, JSON or mappings."""
    command = ["ansible-playbook", *(["-i", inventory] if inventory else []), str(playbook)]
    for item in extra_vars:
        command += ["-e", item if isinstance(item, str) else json.dumps(item)]
    if limit:
        command += ["--limit", limit]
    if vault_password_file:
        command += ["--vault-password-file", vault_password_file]
    return command


def run_playbook(
    command: Sequence[str],
    log: Path,
    *,
    env: Mapping[str, str] | None = None,
    timeout: float = PLAY_TIMEOUT,
) -> PlaybookRun:
    """Run it from the repository with its output in ``log``; timed on the monotonic clock."""
    log.parent.mkdir(parents=True, exist_ok=True)
    environment = {**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0", **(env or {})}
    started = time.monotonic()
    with log.open("w") as out:
        try:
            proc = subprocess.run(  # noqa: S603 - ansible-playbook with an argument list
                list(command),
                cwd=REPO,
                env=environment,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                timeout=timeout,
                check=False,
            )
        except FileNotFoundError:
            raise FleetError("ansible-playbook not found (run scripts/setup.sh and use .venv/bin)") from None
        except subprocess.TimeoutExpired:
            raise FleetError(f"{' '.join(command[:4])} did not finish within {timeout:.0f}s (log: {log})") from None
    seconds = time.monotonic() - started
    output = log.read_text(errors="replace")
    return PlaybookRun(tuple(command), proc.returncode, seconds, parse_recap(output), log, output[-3000:])
