"""The fleet addressing filters: one place decides and validates every host address."""

import importlib.util
from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError

_PATH = Path(__file__).resolve().parents[2] / "plugins" / "filter" / "fleet_network.py"
_spec = importlib.util.spec_from_file_location("fleet_network", _PATH)
assert _spec is not None and _spec.loader is not None
fleet_network = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fleet_network)

HOSTVARS = {
    "lb1": {"ansible_host": "203.0.113.10", "fleet_address": "10.0.1.10"},
    "app1": {"ansible_host": "10.0.2.21"},
    "app2": {"ansible_host": " 10.0.2.22 "},
    "v6": {"ansible_host": "2001:db8::0:1"},
    "named": {"ansible_host": "app.example.internal"},
    "bad_private": {"ansible_host": "10.0.0.9", "fleet_address": "10.0.0.9\nlisten 80"},
    "nothing": {},
    "empty_private": {"ansible_host": "10.0.0.7", "fleet_address": ""},
}


def test_private_address_wins_over_the_connection_address():
    assert fleet_network.fleet_address("lb1", HOSTVARS) == "10.0.1.10"


def test_connection_address_is_the_fallback_and_is_normalised():
    assert fleet_network.fleet_address("app2", HOSTVARS) == "10.0.2.22"
    assert fleet_network.fleet_address("v6", HOSTVARS) == "2001:db8::1"
    assert fleet_network.fleet_address("empty_private", HOSTVARS) == "10.0.0.7"


@pytest.mark.parametrize(
    ("host", "message"),
    [
        ("named", "host named: ansible_host 'app.example.internal' is not an IP address"),
        ("bad_private", "host bad_private: fleet_address '10.0.0.9\\nlisten 80' is not an IP address"),
        ("nothing", "host nothing: no address"),
        ("ghost", "'ghost' is not a host of this inventory"),
    ],
)
def test_bad_addresses_are_refused_with_the_host_and_the_variable(host, message):
    with pytest.raises(AnsibleFilterError) as raised:
        fleet_network.fleet_address(host, HOSTVARS)
    assert message in str(raised.value)


def test_group_addresses_keep_order_and_drop_repeats():
    hostvars = {**HOSTVARS, "lb2": {"ansible_host": "10.0.2.21"}}
    assert fleet_network.fleet_addresses(["app1", "lb1", "lb2"], hostvars) == ["10.0.2.21", "10.0.1.10"]
    assert fleet_network.fleet_addresses([], hostvars) == []


def test_cidr_and_url_forms():
    assert fleet_network.fleet_host_cidr("10.0.0.5") == "10.0.0.5/32"
    assert fleet_network.fleet_host_cidr("2001:db8::1") == "2001:db8::1/128"
    assert fleet_network.fleet_url_host("2001:db8::1") == "[2001:db8::1]"
    assert fleet_network.fleet_url_host("10.0.0.5") == "10.0.0.5"
