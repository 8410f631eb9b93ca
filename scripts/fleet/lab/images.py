"""Debian root images, built once with debootstrap and cached; machines overlay them."""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path

from fleet.lab.config import LabConfig
from fleet.lab.errors import LabError
from fleet.lab.system import run

IMAGE_PACKAGES: tuple[str, ...] = (
    "systemd",
    "systemd-sysv",
    "dbus",
    "openssh-server",
    "python3",
    "python3-apt",
    "sudo",
    "iproute2",
    "procps",
    "ca-certificates",
)
HOST_CA_DIR = Path("/usr/local/share/ca-certificates")


def _apt_source_entries(root: Path = Path("/etc/apt")) -> list[tuple[str, list[str]]]:
    """(URI, suites) pairs from the host's one-line and deb822 apt sources."""
    entries: list[tuple[str, list[str]]] = []
    files = [root / "sources.list", *sorted((root / "sources.list.d").glob("*"))]
    for path in files:
        if not path.is_file():
            continue
        text = path.read_text(errors="replace")
        if path.suffix == ".sources":
            for stanza in re.split(r"\n\s*\n", text):
                fields = _deb822_fields(stanza)
                if "deb" in fields.get("types", "").split():
                    entries.extend((uri, fields.get("suites", "").split()) for uri in fields.get("uris", "").split())
        else:
            for line in text.splitlines():
                words = re.sub(r"\[[^\]]*\]", "", line).split()
                if len(words) >= 3 and words[0] == "deb":
                    entries.append((words[1], [words[2]]))
    return entries


def _deb822_fields(stanza: str) -> dict[str, str]:
    """Key/value fields of one deb822 stanza (keys lowercased, comments skipped)."""
    fields: dict[str, str] = {}
    for line in stanza.splitlines():
        key, _, value = line.partition(":")
        if not line.startswith("#") and value.strip():
            fields[key.strip().lower()] = value.strip()
    return fields


def host_mirrors(environ: dict[str, str] | None = None, apt_root: Path = Path("/etc/apt")) -> tuple[str, str | None]:
    """The Debian mirror and security mirror this host uses (FLEET_LAB_MIRROR overrides)."""
    env = os.environ if environ is None else environ
    if env.get("FLEET_LAB_MIRROR"):
        return env["FLEET_LAB_MIRROR"], env.get("FLEET_LAB_SECURITY_MIRROR") or None
    debian = [(uri, suites) for uri, suites in _apt_source_entries(apt_root) if _is_debian_suite(suites)]
    main = next((uri for uri, suites in debian if not any(s.endswith("-security") for s in suites)), None)
    security = next((uri for uri, suites in debian if any(s.endswith("-security") for s in suites)), None)
    if main is None:
        raise LabError("no Debian mirror found in the host's apt sources; set FLEET_LAB_MIRROR to one")
    return main, security


def _is_debian_suite(suites: list[str]) -> bool:
    names = ("buster", "bullseye", "bookworm", "trixie", "forky", "sid", "stable", "testing", "unstable")
    return any(suite.split("-")[0] in names for suite in suites)


def image_path(cfg: LabConfig, distro: str) -> Path:
    return cfg.images_dir / distro


def _stamp(distro: str, mirror: str) -> dict[str, object]:
    return {"distro": distro, "mirror": mirror, "packages": list(IMAGE_PACKAGES), "format": 1}


def ensure_image(cfg: LabConfig, distro: str, *, rebuild: bool = False, log: Callable[[str], None] = print) -> Path:
    """Return the cached root for a distro, building it first when missing or outdated."""
    mirror, security = host_mirrors()
    target = image_path(cfg, distro)
    stamp_file = target.with_suffix(".json")
    wanted = _stamp(distro, mirror)
    if not rebuild and target.is_dir() and stamp_file.exists() and json.loads(stamp_file.read_text()) == wanted:
        return target
    log(f"building the {distro} image with debootstrap (about 90 s, once)")
    work = target.with_name(distro + ".building")
    shutil.rmtree(work, ignore_errors=True)
    work.parent.mkdir(parents=True, exist_ok=True)
    run(["debootstrap", "--variant=minbase", "--include=" + ",".join(IMAGE_PACKAGES), distro, str(work), mirror])
    _configure_image(work, distro, mirror, security)
    stamp_file.unlink(missing_ok=True)
    shutil.rmtree(target, ignore_errors=True)
    work.rename(target)
    stamp_file.write_text(json.dumps(wanted) + "\n")
    return target


def _configure_image(root: Path, distro: str, mirror: str, security: str | None) -> None:
    """Apt sources, the host's extra CAs, no shared identity (host keys, machine-id, hostname)."""
    lines = [f"deb {mirror} {distro} main", f"deb {mirror} {distro}-updates main"]
    if security:
        lines.append(f"deb {security} {distro}-security main")
    (root / "etc/apt/sources.list").write_text("\n".join(lines) + "\n")
    extra_cas = sorted(HOST_CA_DIR.glob("*.crt")) if HOST_CA_DIR.is_dir() else []
    if extra_cas:
        dest = root / HOST_CA_DIR.relative_to("/")
        dest.mkdir(parents=True, exist_ok=True)
        for ca in extra_cas:
            shutil.copy2(ca, dest / ca.name)
        run(["chroot", str(root), "update-ca-certificates"])
    for key in (root / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    (root / "etc/machine-id").write_text("")
    (root / "etc/hostname").unlink(missing_ok=True)
    run(["chroot", str(root), "apt-get", "clean"])
