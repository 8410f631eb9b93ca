"""Which wheels an app host needs: its build target, its manylinux platform tags, the pins to download.

The app role builds and downloads every wheel on the control node (the hosts have no package
index) and installs from those files only. ``pip download`` on the control node must then be
told the host's Python and platform, and must not evaluate environment markers on the control
node's Python. These filters decide that, so ``roles/app/tasks/build.yml`` only passes them on.
"""

from __future__ import annotations

import re
from typing import Any

from ansible.errors import AnsibleFilterError

DOCUMENTATION = """
name: fleet_manylinux_platforms
short_description: Every manylinux platform tag a glibc version and architecture can run
description: PEP 600 tags manylinux_2_5 up to the host's glibc, then the legacy aliases that apply.
"""

# The legacy aliases (PEP 599, 571, 513) and the architectures they were defined for.
_MANYLINUX2014_ARCHES = ("x86_64", "aarch64", "ppc64le", "s390x", "armv7l", "i686")
_MANYLINUX2010_ARCHES = ("x86_64", "i686")
# The oldest glibc minor that has a PEP 600 tag (manylinux_2_5 = manylinux1).
_FIRST_MINOR = 5
# glibc assumed when the host's was not read (the release is installed already): manylinux2014's.
DEFAULT_LIBC = "glibc 2.17"
_GLIBC = re.compile(r"2\.(\d+)")
_ARCH = re.compile(r"[a-z0-9_]+")
_PYTHON = re.compile(r"3\.\d{1,2}")


def _glibc_minor(glibc: Any) -> int:  # noqa: ANN401 - any template value
    match = _GLIBC.fullmatch(str(glibc).strip())
    if match is None:
        raise AnsibleFilterError(
            f"fleet_wheels: glibc version {str(glibc)!r} is not 2.N (as `getconf GNU_LIBC_VERSION`)"
        )
    return int(match.group(1))


def _arch(arch: Any) -> str:  # noqa: ANN401 - any template value
    if not isinstance(arch, str) or not _ARCH.fullmatch(arch):
        raise AnsibleFilterError(f"fleet_wheels: architecture {arch!r} is not a machine name like x86_64")
    return str(arch)


def fleet_manylinux_platforms(glibc: Any, arch: Any) -> list[str]:  # noqa: ANN401 - any template value
    """``'2.36' | fleet_manylinux_platforms('x86_64')`` → every tag a host with that glibc runs.

    ``manylinux_2_5_<arch>`` … ``manylinux_2_<minor>_<arch>`` (PEP 600), then ``manylinux2014_<arch>``
    where PEP 599 defines it, then ``manylinux2010_<arch>`` and ``manylinux1_<arch>`` on x86_64 and i686.
    The aliases are listed whatever the glibc: pip only downloads what the pins name, and the
    host's own pip refuses a wheel its glibc cannot run.
    """
    minor, machine = _glibc_minor(glibc), _arch(arch)
    tags = [f"manylinux_2_{n}_{machine}" for n in range(_FIRST_MINOR, minor + 1)]
    if machine in _MANYLINUX2014_ARCHES:
        tags.append(f"manylinux2014_{machine}")
    if machine in _MANYLINUX2010_ARCHES:
        tags += [f"manylinux2010_{machine}", f"manylinux1_{machine}"]
    return tags


def fleet_wheel_target(libc: Any, python: Any, arch: Any) -> dict[str, str]:  # noqa: ANN401 - any template value
    """``app_libc.stdout | fleet_wheel_target(python, arch)`` → what to download the wheels for.

    ``libc`` is the output of ``getconf GNU_LIBC_VERSION`` (``glibc 2.36``; empty or undefined when
    it was not read: glibc 2.17 then). Returns ``{python, arch, glibc, name}``; ``name``
    (``py3.11-x86_64-glibc2.36``) is the wheelhouse directory shared by hosts of that target.
    """
    words = str(libc or "").split() or DEFAULT_LIBC.split()
    glibc = words[-1]
    _glibc_minor(glibc)
    if not _PYTHON.fullmatch(str(python)):
        raise AnsibleFilterError(f"fleet_wheels: Python version {python!r} is not X.Y, e.g. 3.11")
    machine = _arch(arch)
    return {"python": str(python), "arch": machine, "glibc": glibc, "name": f"py{python}-{machine}-glibc{glibc}"}


def fleet_pinned_requirements(text: Any) -> str:  # noqa: ANN401 - any template value
    """A pinned requirements file without comment lines, blank lines and environment markers.

    Markers in a requirements file are evaluated on the Python that reads it; the control
    node's may differ from the host's. Every pin is downloaded instead (``--no-deps``, no
    resolution) and the host's pip, with the original file as constraints, picks what its own
    interpreter needs from that set.
    """
    pins = [re.sub(r"\s*;.*$", "", line) for line in str(text).splitlines() if line.strip() and not _comment(line)]
    return "".join(pin + "\n" for pin in pins)


def _comment(line: str) -> bool:
    return line.lstrip().startswith("#")


class FilterModule:
    """Wheel targets and platforms of the app hosts."""

    def filters(self) -> dict[str, Any]:
        return {
            "fleet_manylinux_platforms": fleet_manylinux_platforms,
            "fleet_wheel_target": fleet_wheel_target,
            "fleet_pinned_requirements": fleet_pinned_requirements,
        }
