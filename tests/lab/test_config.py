"""Argument handling: machine specs, lab settings and address planning, checked before anything changes."""

import ipaddress

import pytest

from fleet.lab.config import LabConfig, MachineSpec
from fleet.lab.errors import LabError
from fleet.lab.operations import plan_addresses
from fleet.lab.state import LabState, MachineRecord

CFG = LabConfig()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("web1", MachineSpec("web1", "bookworm", None)),
        ("db-1:trixie", MachineSpec("db-1", "trixie", None)),
        ("lb1:bookworm:10.231.0.40", MachineSpec("lb1", "bookworm", ipaddress.IPv4Address("10.231.0.40"))),
        ("lb2::10.231.0.41", MachineSpec("lb2", "bookworm", ipaddress.IPv4Address("10.231.0.41"))),
    ],
)
def test_spec_parses(text, expected):
    assert MachineSpec.parse(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Web1", "machine name 'Web1'"),
        ("1web", "machine name '1web'"),
        ("web_1", "machine name 'web_1'"),
        ("w", "machine name 'w'"),
        ("web1:sid", "unknown distro 'sid'"),
        ("web1:bookworm:10.231.0.300", "is not an IPv4 address"),
        ("web1:bookworm:10.0.0.1:22", "expected NAME[:DISTRO[:ADDRESS]]"),
        (":bookworm", "expected NAME[:DISTRO[:ADDRESS]]"),
    ],
)
def test_spec_rejects(text, message):
    with pytest.raises(LabError, match=message.replace("[", r"\[").replace("]", r"\]")):
        MachineSpec.parse(text)


def test_config_from_env_defaults_and_overrides(tmp_path):
    assert LabConfig.from_env({}) == LabConfig()
    cfg = LabConfig.from_env({"FLEET_LAB_DIR": str(tmp_path), "FLEET_LAB_SUBNET": "172.30.5.0/26"})
    assert cfg.state_dir == tmp_path
    assert str(cfg.gateway) == "172.30.5.1"
    assert cfg.private_key == tmp_path / "ssh" / "id_ed25519"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"FLEET_LAB_SUBNET": "8.8.8.0/24"}, "must be a private IPv4 subnet"),
        ({"FLEET_LAB_SUBNET": "10.9.9.0/30"}, "must be a private IPv4 subnet"),
        ({"FLEET_LAB_SUBNET": "10.9.9.0/33"}, "FLEET_LAB_SUBNET"),
        ({"FLEET_LAB_BRIDGE": "a-bridge-name-too-long"}, "not a valid interface name"),
    ],
)
def test_config_rejects(env, message):
    with pytest.raises(LabError, match=message):
        LabConfig.from_env(env)


def _state(*records: MachineRecord) -> LabState:
    return LabState(machines={r.name: r for r in records})


def test_plan_assigns_next_free_address_after_the_reserved_block():
    state = _state(MachineRecord("a1", "bookworm", "10.231.0.10", "vfla"))
    plan = plan_addresses(CFG, [MachineSpec("a1"), MachineSpec("b1"), MachineSpec("c1")], state, set())
    assert plan == {
        "a1": ipaddress.IPv4Address("10.231.0.10"),
        "b1": ipaddress.IPv4Address("10.231.0.11"),
        "c1": ipaddress.IPv4Address("10.231.0.12"),
    }


def test_plan_skips_addresses_the_host_holds():
    plan = plan_addresses(CFG, [MachineSpec("b1")], LabState(), {ipaddress.IPv4Address("10.231.0.10")})
    assert plan["b1"] == ipaddress.IPv4Address("10.231.0.11")


def test_plan_refuses_taken_address():
    state = _state(MachineRecord("a1", "bookworm", "10.231.0.30", "vfla"))
    with pytest.raises(LabError, match="already taken by a1"):
        plan_addresses(CFG, [MachineSpec.parse("b1::10.231.0.30")], state, set())


def test_plan_refuses_same_name_with_other_settings():
    state = _state(MachineRecord("a1", "bookworm", "10.231.0.30", "vfla"))
    with pytest.raises(LabError, match=r"exists as bookworm at 10\.231\.0\.30"):
        plan_addresses(CFG, [MachineSpec.parse("a1:trixie")], state, set())
    with pytest.raises(LabError, match="exists as bookworm"):
        plan_addresses(CFG, [MachineSpec.parse("a1:bookworm:10.231.0.31")], state, set())


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("b1::10.231.1.5", "outside the lab subnet"),
        ("b1::10.231.0.1", "reserved"),
        ("b1::10.231.0.255", "reserved"),
    ],
)
def test_plan_refuses_bad_addresses(spec, message):
    with pytest.raises(LabError, match=message):
        plan_addresses(CFG, [MachineSpec.parse(spec)], LabState(), set())


def test_plan_refuses_duplicates_in_one_request():
    with pytest.raises(LabError, match="named twice"):
        plan_addresses(CFG, [MachineSpec("a1"), MachineSpec("a1")], LabState(), set())
    with pytest.raises(LabError, match="given to two machines"):
        plan_addresses(
            CFG, [MachineSpec.parse("a1::10.231.0.40"), MachineSpec.parse("a2::10.231.0.40")], LabState(), set()
        )


def test_plan_reports_a_full_subnet():
    small = LabConfig(subnet=ipaddress.IPv4Network("10.231.0.0/28"))
    specs = [MachineSpec(f"m{i}x") for i in range(6)]
    with pytest.raises(LabError, match="no free address"):
        plan_addresses(small, specs, LabState(), set())
