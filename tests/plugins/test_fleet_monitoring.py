"""Prometheus targets from the inventory's groups: each host at its fleet address and own port."""

import importlib.util
from pathlib import Path

import pytest
from ansible.errors import AnsibleFilterError

_PATH = Path(__file__).resolve().parents[2] / "plugins" / "filter" / "fleet_monitoring.py"
_spec = importlib.util.spec_from_file_location("fleet_monitoring", _PATH)
assert _spec is not None and _spec.loader is not None
fleet_monitoring = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fleet_monitoring)
targets = fleet_monitoring.scrape_targets

HOSTVARS = {
    "lb1": {"ansible_host": "203.0.113.10", "fleet_address": "10.0.1.10", "nginx_https_port": 8443},
    "app1": {"ansible_host": "10.0.2.21", "app_port": "9000"},
    "app2": {"ansible_host": "10.0.2.22"},
    "v6": {"ansible_host": "2001:db8::1"},
    "bad": {"ansible_host": "10.0.0.9", "app_port": 70000},
}


def test_one_target_per_host_at_its_fleet_address_and_own_port():
    assert targets(["app1", "app2", "app1"], HOSTVARS, "app_port", 8000) == [
        {"targets": ["10.0.2.21:9000"], "labels": {"instance": "app1"}},
        {"targets": ["10.0.2.22:8000"], "labels": {"instance": "app2"}},
    ]


def test_private_address_wins_over_ansible_host():
    assert targets(["lb1"], HOSTVARS, "exporters_node_port", 9100)[0]["targets"] == ["10.0.1.10:9100"]


def test_probe_urls_and_ipv6():
    assert targets(["lb1"], HOSTVARS, "nginx_https_port", 443, "https://{address}:{port}/health")[0]["targets"] == [
        "https://10.0.1.10:8443/health"
    ]
    assert targets(["v6"], HOSTVARS, "exporters_node_port", 9100)[0]["targets"] == ["[2001:db8::1]:9100"]


def test_bad_port_or_unknown_host_is_an_error():
    with pytest.raises(AnsibleFilterError, match="app_port = 70000"):
        targets(["bad"], HOSTVARS, "app_port", 8000)
    with pytest.raises(AnsibleFilterError, match="not a host"):
        targets(["nope"], HOSTVARS, "app_port", 8000)


def test_empty_group_has_no_target():
    assert targets([], HOSTVARS, "app_port", 8000) == []
