"""The audits both scenarios run on converged machines: ssh-audit from the control node, lynis on the host.

ssh-audit is the control node's (the pinned PyPI release in .venv); lynis is Debian's package,
installed on the audited machine by the verifier (the roles do not ship it). Both print what
they found, so a CI log shows the figures (docs/security.md records them).
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

SSH_AUDIT = Path(sys.executable).parent / "ssh-audit"
LYNIS_REPORT = "/var/log/lynis-report.dat"
LYNIS_MIN_INDEX = 80


@dataclass
class SshAudit:
    """Failures and warnings ssh-audit reports for one server, as 'algorithm: note' lines."""

    target: str
    failures: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    banner: str = ""


def ssh_audit(address: str, port: int = 22) -> SshAudit:
    """Run ssh-audit (JSON output, no rate test) against a server and collect its notes."""
    proc = subprocess.run(
        [str(SSH_AUDIT), "--json", "--skip-rate-test", "-t", "10", "-p", str(port), address],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    # ssh-audit exits non-zero when it finds failures or warnings; the JSON is there either way.
    report = json.loads(proc.stdout)
    audit = SshAudit(target=f"{address}:{port}", banner=report.get("banner", {}).get("raw", ""))
    for section in ("kex", "key", "enc", "mac"):
        for algorithm in report.get(section, []):
            notes = algorithm.get("notes", {})
            name = f"({section}) {algorithm.get('algorithm')}"
            audit.failures += [f"{name}: {note}" for note in notes.get("fail", [])]
            audit.warnings += [f"{name}: {note}" for note in notes.get("warn", [])]
    return audit


def print_ssh_audit(name: str, audit: SshAudit) -> None:
    counts = f"{len(audit.failures)} failures, {len(audit.warnings)} warnings"
    print(f"{name}: ssh-audit {audit.target} ({audit.banner}): {counts}")
    for line in audit.failures:
        print(f"  fail  {line}")
    for line in audit.warnings:
        print(f"  warn  {line}")


@dataclass
class Lynis:
    """A lynis run's hardening index, suggestions and warnings (test id and text)."""

    index: int
    suggestions: list[str]
    warnings: list[str]


def lynis(host) -> Lynis:
    """Install Debian's lynis on the host, run a full audit and read its report."""
    host.check_output(
        "DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o DPkg::Lock::Timeout=120 lynis > /dev/null"
    )
    run = host.run("lynis audit system --quick --no-colors --no-log > /dev/null 2>&1; cat " + LYNIS_REPORT)
    values: dict[str, list[str]] = {}
    for line in run.stdout.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values.setdefault(key, []).append(value)
    if "hardening_index" not in values:
        raise AssertionError(f"lynis wrote no hardening index: {run.stderr[-500:]}")

    def entries(key: str) -> list[str]:
        return [
            " ".join(part for part in value.split("|")[:2] if part and part != "-") for value in values.get(key, [])
        ]

    return Lynis(int(values["hardening_index"][0]), entries("suggestion[]"), entries("warning[]"))


def print_lynis(name: str, result: Lynis) -> None:
    print(f"{name}: lynis hardening index {result.index} (at least {LYNIS_MIN_INDEX} required)")
    for line in result.warnings:
        print(f"  warning     {line}")
    for line in result.suggestions:
        print(f"  suggestion  {line}")


def fail2ban_bans_repeated_failures(host, source: str, attempts: int = 6) -> str:
    """Fail SSH logins from the host to its own address `source` until fail2ban bans it; the ban list.

    fail2ban ignores a host's own addresses (ignoreself): that is switched off for the test and
    back on afterwards, and the ban lifted, whatever happens.

    The ban can land while an attempt's connection is open: its packets are then rejected with
    an ICMP error, which TCP takes as a soft error on an established connection and retransmits
    for about 15 minutes (tcp_retries2). So each attempt is bounded by `timeout`, and no attempt
    is made once the source is banned.
    """
    assert "nftables-multiport" in host.check_output("fail2ban-client get sshd actions")
    host.check_output(f"fail2ban-client set sshd unbanip {source} >/dev/null 2>&1 || true")
    host.check_output("fail2ban-client set sshd ignoreself false")

    def banned() -> str:
        return host.check_output("fail2ban-client get sshd banip")

    try:
        for _ in range(attempts):
            if source in banned().split():
                break
            # "|| true": testinfra takes ssh's own exit status 255 for a failure to reach the host.
            host.run(
                "timeout 10 ssh -o BatchMode=yes -o ConnectTimeout=3 -o StrictHostKeyChecking=no"
                f" nosuchuser@{source} true || true"
            )
        ban_list = ""
        for _ in range(20):
            ban_list = banned()
            if source in ban_list.split():
                break
            host.run("sleep 0.5")
        table = host.run("nft list table inet f2b-table").stdout
        refused = host.run(f"timeout 3 bash -c 'exec 3<>/dev/tcp/{source}/22'").rc != 0
        return f"banned: {ban_list}\nrefused: {refused}\n{table}"
    finally:
        host.run(f"fail2ban-client set sshd unbanip {source}")
        host.check_output("fail2ban-client set sshd ignoreself true")
