"""Releases and rolls for the deploy verifiers of both scenarios (issue 8's proof).

A release is a copy of app/ with one real change: N+1's /health answers a `build` field
that N's code does not have (and its release name, which /health reports too, follows the
content), N+2 also answers 503 on /ready, so it can never pass a health gate. Playbooks
run as a user runs them, against the scenario's inventory, and their output is kept for the
failure messages.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"
APP_ROOT = "/opt/fastapi-fleet"
PLAY_TIMEOUT = 1800
# The steady load's connections at most, as a client's pool: below nginx's 50 per client
# address (nginx_conn_limit), which a single-host restart's wait would otherwise exceed with
# one connection per waiting request (429s from nginx, not from the roll: seen when the
# host's CPU was shared).
STEADY_CONNECTIONS = 32
HEALTH = "src/fastapi_fleet_app/health.py"
READY_CHECK = '    ok = postgres == "ok" and redis == "ok"\n'
HEALTH_BODY = '"hostname": _HOSTNAME}'


def make_release(base: Path, name: str, *, broken: bool = False) -> Path:
    """A copy of app/ whose code differs from the deployed one (and fails readiness if broken)."""
    tree = base / name
    shutil.copytree(
        REPO / "app",
        tree,
        ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__", ".pytest_cache", ".venv"),
    )
    health = tree / HEALTH
    source = health.read_text()
    for needle in (HEALTH_BODY, READY_CHECK):
        if needle not in source:
            raise AssertionError(f"{HEALTH} changed: {needle.strip()!r} is gone, the verifier cannot change it")
    source = source.replace(HEALTH_BODY, f'"hostname": _HOSTNAME, "build": "{name}"}}')
    if broken:
        source = source.replace(READY_CHECK, "    ok = False  # a release that can never be ready\n")
    health.write_text(source)
    return tree


@dataclass(frozen=True)
class Play:
    """A finished ansible-playbook run."""

    returncode: int
    output: str
    seconds: float

    def tail(self, chars: int = 4000) -> str:
        return self.output[-chars:]


def run_playbook(inventory: str, playbook: str, extra_vars: dict | None = None) -> Play:
    """ansible-playbook playbooks/<playbook> on the scenario's inventory, as a user runs it."""
    command = [str(ANSIBLE_PLAYBOOK), "-i", inventory, str(REPO / "playbooks" / playbook)]
    if extra_vars:
        command += ["-e", json.dumps(extra_vars)]
    env = {**os.environ, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0"}
    started = time.monotonic()
    proc = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=PLAY_TIMEOUT, check=False)
    return Play(proc.returncode, proc.stdout + proc.stderr, time.monotonic() - started)


def current_release(host) -> str:
    """The release a testinfra host's `current` link points to."""
    return Path(host.check_output(f"readlink {APP_ROOT}/current")).name


def health(host, url: str) -> dict:
    """The app's /health answer, asked on the host itself."""
    fetch = "import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())"
    return json.loads(host.check_output(f"python3 -c '{fetch}' {url}"))


def running_release(host, url: str) -> str:
    """The release the app on the host reports in /health."""
    return str(health(host, url)["release"])


def running_build(host, url: str) -> str | None:
    """The `build` field a verifier release's code adds to /health (None: the converged code)."""
    return health(host, url).get("build")
