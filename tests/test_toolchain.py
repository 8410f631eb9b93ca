"""The toolchain is pinned: every dependency has an exact version, and the app's pins agree."""

import re
import tomllib

from fleet.docs.cli import REPO


def pins(path) -> dict[str, str]:
    found = {}
    for line in path.read_text().splitlines():
        spec = line.split("#")[0].split(";")[0].strip()
        if spec:
            name, _, version = spec.partition("==")
            assert version, f"{path.name}: {line!r} is not pinned with =="
            found[re.sub(r"[-_.]+", "-", name.lower())] = version
    return found


def requirement_names(pyproject) -> list[str]:
    deps = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    return [re.sub(r"[-_.]+", "-", re.match(r"[A-Za-z0-9_.-]+", dep).group(0).lower()) for dep in deps]


def test_every_dependency_is_pinned():
    top = pins(REPO / "constraints.txt")
    missing = [name for name in requirement_names(REPO / "pyproject.toml") if name not in top]
    missing += [name for name in requirement_names(REPO / "app" / "pyproject.toml") if name not in top]
    assert missing == [], "run scripts/lock.sh"


def test_app_pins_match_the_toolchain():
    top = pins(REPO / "constraints.txt")
    app = pins(REPO / "app" / "constraints.txt")
    assert {name: (version, top.get(name)) for name, version in app.items() if top.get(name) != version} == {}
    assert all(name in app for name in requirement_names(REPO / "app" / "pyproject.toml"))
