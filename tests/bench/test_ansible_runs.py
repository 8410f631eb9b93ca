"""fleet bench ansible without the lab: the checks before a machine is touched, and the inventories it writes."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from fleet.bench import ansible_runs
from fleet.bench.ansible_runs import Options
from fleet.errors import FleetError
from fleet.ops.inventory import REPO


def test_addresses_of_the_largest_fleet():
    addresses = ansible_runs.check_options(Options())
    assert addresses[0] == "10.231.0.160" and addresses[-1] == "10.231.0.179" and len(addresses) == 20


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"sizes": (1, 5)}, "--sizes takes fleet sizes from 2 to 40"),
        ({"sizes": (5, 5)}, "--sizes lists a size twice"),
        ({"sizes": ()}, "--sizes takes"),
        ({"settings": ("bundle", "turbo")}, "unknown setting turbo"),
        ({"first_address": "10.231.0.x"}, "is not an IPv4 address"),
        ({"first_address": "10.231.0.250"}, "20 addresses from 10.231.0.250 do not fit the lab subnet"),
        ({"first_address": "10.0.0.10"}, "do not fit the lab subnet"),
        ({"prefix": "Bench_"}, "machine name"),
        ({"machines": 1}, "--machines must be 2..20"),
        ({"machines": 21}, "--machines must be 2..20"),
    ],
)
def test_bad_options(change, message):
    with pytest.raises(FleetError, match=message):
        ansible_runs.check_options(replace(Options(), **change))


def test_the_written_inventory_reads_as_the_fleet(tmp_path):
    names = ["bench-n01", "bench-n02", "bench-n03"]
    directory = ansible_runs.write_inventory(
        tmp_path / "3-hosts", names, ["10.231.0.160", "10.231.0.161", "10.231.0.162"], "bookworm"
    )
    linked = sorted(p.name for p in (directory / "group_vars" / "all").iterdir())
    assert linked == sorted(p.name for p in ansible_runs.LAB_GROUP_VARS.glob("*.yml"))
    listing = subprocess.run(
        [Path(sys.executable).parent / "ansible-inventory", "-i", str(directory), "--list"],
        cwd=REPO, capture_output=True, text=True, check=True,
    )  # fmt: skip
    data = json.loads(listing.stdout)
    assert data["app"]["hosts"] == ["bench-n01"] and data["loadbalancers"]["hosts"] == ["bench-n01"]
    assert data["base"]["hosts"] == ["bench-n02", "bench-n03"]
    host = data["_meta"]["hostvars"]["bench-n03"]
    assert host["ansible_host"] == "10.231.0.162"
    assert host["fleet_environment"] == "lab"  # the lab's group_vars apply


def test_boot_in_batches_with_one_retry():
    from fleet.lab.errors import LabError

    calls: list[list[int]] = []

    def up(batch):
        calls.append(list(batch))
        if len(calls) == 2:
            raise LabError("machine x did not finish booting")

    notes: list[str] = []
    ansible_runs.boot(up, list(range(12)), notes.append, batch=5)
    assert calls == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9], [5, 6, 7, 8, 9], [10, 11]]
    assert notes == ["booting again after: machine x did not finish booting"]


def test_known_hosts_of_every_address_come_from_its_machine():
    lab = "10.231.0.160 ssh-ed25519 AAAA1\n10.231.0.161 ssh-ed25519 AAAA2\n10.231.0.161 ecdsa-sha2-nistp256 BBBB2\n"
    machine_of = {"10.231.0.160": "10.231.0.160", "10.231.0.161": "10.231.0.161", "10.231.0.170": "10.231.0.161"}
    assert ansible_runs.known_hosts_lines(lab, machine_of) == [
        "10.231.0.160 ssh-ed25519 AAAA1",
        "10.231.0.161 ssh-ed25519 AAAA2",
        "10.231.0.161 ecdsa-sha2-nistp256 BBBB2",
        "10.231.0.170 ssh-ed25519 AAAA2",
        "10.231.0.170 ecdsa-sha2-nistp256 BBBB2",
    ]
    with pytest.raises(FleetError, match=r"no key for 10\.231\.0\.162"):
        ansible_runs.known_hosts_lines(lab, {"10.231.0.171": "10.231.0.162"})
