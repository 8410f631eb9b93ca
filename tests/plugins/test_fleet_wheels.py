"""Which wheels an app host needs: its build target, its manylinux tags, the pins to download."""

import importlib.util
from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("fleet_wheels", ROOT / "plugins" / "filter" / "fleet_wheels.py")
assert _spec is not None and _spec.loader is not None
fleet_wheels = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fleet_wheels)

ARCHES = ["x86_64", "aarch64", "i686", "armv7l"]
GLIBCS = ["2.17", "2.36", "2.41"]
# The legacy aliases each architecture gets after its PEP 600 tags.
ALIASES = {
    "x86_64": ["manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64"],
    "i686": ["manylinux2014_i686", "manylinux2010_i686", "manylinux1_i686"],
    "aarch64": ["manylinux2014_aarch64"],
    "armv7l": ["manylinux2014_armv7l"],
}


@pytest.mark.parametrize("arch", ARCHES)
@pytest.mark.parametrize("glibc", GLIBCS)
def test_every_tag_the_glibc_runs_then_the_legacy_aliases(glibc, arch):
    minor = int(glibc.split(".")[1])
    tags = fleet_wheels.fleet_manylinux_platforms(glibc, arch)
    pep600 = [f"manylinux_2_{n}_{arch}" for n in range(5, minor + 1)]
    assert tags == pep600 + ALIASES[arch]
    assert tags[0] == f"manylinux_2_5_{arch}"
    assert f"manylinux_2_{minor}_{arch}" in tags
    assert f"manylinux_2_{minor + 1}_{arch}" not in tags
    assert len(tags) == len(set(tags))


def test_bookworm_on_x86_64_in_full():
    # Debian 12: glibc 2.36.
    assert fleet_wheels.fleet_manylinux_platforms("2.36", "x86_64") == [
        *(f"manylinux_2_{n}_x86_64" for n in range(5, 37)),
        "manylinux2014_x86_64",
        "manylinux2010_x86_64",
        "manylinux1_x86_64",
    ]


def test_architectures_without_legacy_aliases_get_pep600_tags_only():
    assert fleet_wheels.fleet_manylinux_platforms("2.17", "riscv64") == [
        f"manylinux_2_{n}_riscv64" for n in range(5, 18)
    ]
    assert fleet_wheels.fleet_manylinux_platforms("2.36", "ppc64le")[-1] == "manylinux2014_ppc64le"
    assert fleet_wheels.fleet_manylinux_platforms(" 2.17\n", "s390x")[-2:] == [
        "manylinux_2_17_s390x",
        "manylinux2014_s390x",
    ]


@pytest.mark.parametrize(
    ("glibc", "arch", "message"),
    [
        ("glibc 2.36", "x86_64", "glibc version 'glibc 2.36' is not 2.N"),
        ("3.1", "x86_64", "glibc version '3.1' is not 2.N"),
        ("2.x", "x86_64", "glibc version '2.x' is not 2.N"),
        ("2.36", "x86 64", "architecture 'x86 64' is not a machine name"),
        ("2.36", None, "architecture None is not a machine name"),
    ],
)
def test_bad_platform_inputs_are_refused(glibc, arch, message):
    with pytest.raises(AnsibleFilterError, match=message):
        fleet_wheels.fleet_manylinux_platforms(glibc, arch)


@pytest.mark.parametrize("arch", ARCHES)
@pytest.mark.parametrize("glibc", GLIBCS)
def test_build_target_from_getconf(glibc, arch):
    target = fleet_wheels.fleet_wheel_target(f"glibc {glibc}", "3.11", arch)
    assert target == {"python": "3.11", "arch": arch, "glibc": glibc, "name": f"py3.11-{arch}-glibc{glibc}"}
    assert list(target) == ["python", "arch", "glibc", "name"]


@pytest.mark.parametrize("libc", ["", None])
def test_build_target_without_getconf_assumes_manylinux2014s_glibc(libc):
    # The C library is read only when the release is not installed yet; the target is unused otherwise.
    assert fleet_wheels.fleet_wheel_target(libc, "3.13", "aarch64")["name"] == "py3.13-aarch64-glibc2.17"


@pytest.mark.parametrize(
    ("libc", "python", "arch", "message"),
    [
        ("glibc 2.36", "3", "x86_64", "Python version '3' is not X.Y"),
        ("glibc 2.36", "3.11; rm", "x86_64", "Python version '3.11; rm' is not X.Y"),
        ("musl 1.2", "3.11", "x86_64", "glibc version '1.2' is not 2.N"),
        ("glibc 2.36", "3.11", "../x", "architecture '../x' is not a machine name"),
    ],
)
def test_bad_target_inputs_are_refused(libc, python, arch, message):
    with pytest.raises(AnsibleFilterError, match=message):
        fleet_wheels.fleet_wheel_target(libc, python, arch)


def test_pins_lose_comments_blank_lines_and_markers():
    text = (
        "# header\n"
        "\n"
        "alembic==1.20.1\n"
        "   # indented comment\n"
        'async-timeout==5.0.1 ; python_full_version < "3.11.3"\n'
        "tomli==2.0.1;python_version<'3.11'\n"
        "   \n"
        "uvloop==0.23.0"
    )
    assert (
        fleet_wheels.fleet_pinned_requirements(text)
        == "alembic==1.20.1\nasync-timeout==5.0.1\ntomli==2.0.1\nuvloop==0.23.0\n"
    )


def test_pins_of_an_empty_file_are_empty():
    assert fleet_wheels.fleet_pinned_requirements("# nothing pinned\n\n") == ""


def test_the_apps_constraints_become_one_pin_a_line():
    text = (ROOT / "app" / "constraints.txt").read_text()
    pins = fleet_wheels.fleet_pinned_requirements(text).splitlines()
    expected = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    assert len(pins) == len(expected)
    assert all("==" in pin and ";" not in pin and pin == pin.strip() for pin in pins)
    assert [pin.split("==")[0] for pin in pins] == [line.split("==")[0] for line in expected]


def test_the_filters_are_registered():
    assert set(fleet_wheels.FilterModule().filters()) == {
        "fleet_manylinux_platforms",
        "fleet_wheel_target",
        "fleet_pinned_requirements",
    }
