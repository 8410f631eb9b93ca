"""The lab's record of what it made, kept on disk so `down` can undo it after a crash."""

from __future__ import annotations

import fcntl
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class MachineRecord:
    """One machine as created: enough to find and remove every piece of it."""

    name: str
    distro: str
    address: str
    veth: str
    pid: int | None = None


@dataclass
class LabState:
    """Machines plus the host settings the lab changed (to restore them)."""

    machines: dict[str, MachineRecord] = field(default_factory=dict)
    ip_forward_before: str | None = None

    @classmethod
    def load(cls, path: Path) -> LabState:
        if not path.exists():
            return cls()
        raw: dict[str, Any] = json.loads(path.read_text())
        machines = {name: MachineRecord(**rec) for name, rec in raw.get("machines", {}).items()}
        return cls(machines=machines, ip_forward_before=raw.get("ip_forward_before"))

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        data = {
            "machines": {name: asdict(rec) for name, rec in sorted(self.machines.items())},
            "ip_forward_before": self.ip_forward_before,
        }
        tmp.write_text(json.dumps(data, indent=2) + "\n")
        tmp.replace(path)


@contextmanager
def locked(state_dir: Path) -> Iterator[None]:
    """Serialise lab commands: two `up`s at once would race for names and addresses."""
    state_dir.mkdir(parents=True, exist_ok=True)
    with open(state_dir / "lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
