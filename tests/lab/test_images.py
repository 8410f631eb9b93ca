"""The image builder takes its mirror from the host's apt configuration (never a hard-coded host)."""

import pytest

from fleet.lab.errors import LabError
from fleet.lab.images import host_mirrors


def write(root, name, text):
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_deb822_sources(tmp_path):
    write(
        tmp_path,
        "sources.list.d/debian.sources",
        "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\nComponents: main\n\n"
        "Types: deb\n# a comment\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\n"
        "Components: main\n",
    )
    write(tmp_path, "sources.list.d/other.sources", "Types: deb\nURIs: https://vendor.example/apt\nSuites: nodistro\n")
    assert host_mirrors({}, tmp_path) == ("http://mirror.example/debian", "http://mirror.example/debian-security")


def test_one_line_sources_with_options(tmp_path):
    write(
        tmp_path,
        "sources.list",
        "# deb http://old.example/debian buster main\n"
        "deb [arch=amd64 signed-by=/k.gpg] http://m.example/debian trixie main\n"
        "deb http://m.example/security trixie-security main\n",
    )
    assert host_mirrors({}, tmp_path) == ("http://m.example/debian", "http://m.example/security")


def test_override_wins(tmp_path):
    assert host_mirrors({"FLEET_LAB_MIRROR": "http://own.example/debian"}, tmp_path) == (
        "http://own.example/debian",
        None,
    )


def test_no_debian_mirror_is_a_clear_error(tmp_path):
    write(tmp_path, "sources.list", "deb http://archive.example/ubuntu noble main\n")
    with pytest.raises(LabError, match="set FLEET_LAB_MIRROR"):
        host_mirrors({}, tmp_path)
