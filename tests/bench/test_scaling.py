"""fleet bench ansible's pure parts: the settings, the fleet inventory, the growth fit and the report."""

from __future__ import annotations

import json

import pytest
from rich.console import Console

from fleet.bench import scaling
from fleet.bench.scaling import Timing


def test_settings_are_ansible_environment_variables():
    assert scaling.SETTINGS["bundle"].env == {}
    stock = scaling.SETTINGS["ansible-defaults"].env
    assert stock["ANSIBLE_FORKS"] == "5" and stock["ANSIBLE_PIPELINING"] == "False"
    assert stock["ANSIBLE_CACHE_PLUGIN"] == "memory" and stock["ANSIBLE_GATHERING"] == "implicit"
    for setting in scaling.SETTINGS.values():
        assert all(name.startswith("ANSIBLE_") for name in setting.env)


def test_inventory_one_host_with_every_tier_and_base_hosts():
    names = scaling.host_names("bench-n", 5)
    assert names == ["bench-n01", "bench-n02", "bench-n03", "bench-n04", "bench-n05"]
    inv = scaling.inventory(names, [f"10.231.0.{160 + i}" for i in range(5)], "bookworm")["all"]
    for group in ("loadbalancers", "app", "postgres", "redis"):
        assert list(inv["children"][group]["hosts"]) == ["bench-n01"]
    assert list(inv["children"]["base"]["hosts"]) == names[1:]
    assert inv["children"]["base"]["vars"] == {"common_firewall_enabled": False}
    assert "ansible_ssh_common_args" not in inv["hosts"]["bench-n02"]
    assert inv["hosts"]["bench-n05"] == {"ansible_host": "10.231.0.164", "lab_distro": "bookworm"}
    with_keys = scaling.inventory(names[:2], ["10.231.0.160", "10.231.0.161"], "bookworm", "/x/known_hosts")
    assert with_keys["all"]["hosts"]["bench-n02"]["ansible_ssh_common_args"] == (
        "-o UserKnownHostsFile=/x/known_hosts -o StrictHostKeyChecking=yes"
    )


def test_hosts_sharing_a_machine_write_its_node_exporter_the_same():
    names = scaling.host_names("bench-n", 7)
    addresses = [f"10.231.0.{160 + i}" for i in range(7)]
    where = scaling.placement(7, 5)
    machine_of = {addresses[i]: addresses[where[i]] for i in range(7)}
    hosts = scaling.inventory(names, addresses, "bookworm", machine_of=machine_of)["all"]["hosts"]
    assert hosts["bench-n06"]["exporters_listen_address"] == "10.231.0.161"
    assert hosts["bench-n07"]["exporters_listen_address"] == "10.231.0.162"
    for alone in names[:5]:
        assert "exporters_listen_address" not in hosts[alone]


def test_placement_spreads_base_hosts_over_the_other_machines():
    assert scaling.placement(5, 5) == [0, 1, 2, 3, 4]
    assert scaling.placement(10, 5) == [0, 1, 2, 3, 4, 1, 2, 3, 4, 1]
    assert scaling.placement(20, 5).count(0) == 1
    assert sorted(scaling.placement(20, 5)[1:]).count(1) == 5
    assert scaling.placement(3, 2) == [0, 1, 1]
    with pytest.raises(ValueError, match="at least 2 machines"):
        scaling.placement(5, 1)


def test_fit_is_least_squares():
    assert scaling.fit({5: 60.0, 10: 80.0, 20: 120.0}) == (4.0, 40.0)
    assert scaling.fit({5: 60.0}) == (None, None)
    slope, intercept = scaling.fit({5: 50.0, 10: 90.0, 20: 120.0})
    assert slope == pytest.approx(516.67 / 116.67, abs=0.01)
    assert intercept == pytest.approx(35.0, abs=0.1)


def runs() -> list[Timing]:
    return [
        Timing("bundle", 20, 120.0, 0, True),
        Timing("ansible-defaults", 20, 400.0, 0, True),
        Timing("bundle", 10, 80.0, 0, True),
        Timing("ansible-defaults", 10, 200.0, 0, True),
        Timing("bundle", 5, 60.0, 0, True),
        Timing("ansible-defaults", 5, 100.0, 0, True),
        Timing("bundle", 5, 62.0, 0, True),  # a second run: the median counts
        Timing("free", 20, 90.0, 3, True),  # changed something: not a no-change run
        Timing("free", 10, 70.0, 0, False),  # failed
    ]


def test_growth_per_setting_leaves_out_runs_that_changed_or_failed():
    by_name = {g.setting: g for g in scaling.growth(runs())}
    assert list(by_name) == ["bundle", "ansible-defaults", "free"]
    bundle = by_name["bundle"]
    assert bundle.seconds == {5: 61.0, 10: 80.0, 20: 120.0}
    assert bundle.per_host == pytest.approx(3.94, abs=0.01)
    assert bundle.largest_over_smallest == pytest.approx(1.97, abs=0.01)
    assert by_name["ansible-defaults"].per_host == 20.0
    assert by_name["free"].seconds == {} and by_name["free"].per_host is None


def test_headline_names_the_setting_that_grows_least():
    lines = scaling.headline(scaling.growth(runs()))
    assert lines[0].startswith("grows least: bundle (ansible.cfg as shipped")
    assert "3.94s per added host" in lines[0]
    assert "ansible-defaults/bundle at 20 hosts: 3.33 (400s vs 120s)" in lines


def test_table_and_document():
    growths = scaling.growth(runs())
    console = Console(width=200, record=True)
    console.print(scaling.table(growths, [5, 10, 20]))
    text = console.export_text()
    assert "20/5" in text and "ansible-defaults" in text
    doc = json.loads(json.dumps(scaling.document(runs(), [], sizes=[5, 10, 20], cpus=2)))
    assert doc["kind"] == "fleet-bench-ansible"
    assert doc["growth"][0]["seconds"] == {"5": 61.0, "10": 80.0, "20": 120.0}
    assert len(doc["runs"]) == 9
