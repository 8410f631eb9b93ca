"""fleet-ops over a real lab machine: inventory resolution, parallel commands, strict host keys."""

import os

import pytest
import yaml

from fleet.lab import operations
from fleet.lab.config import LabConfig, MachineSpec
from fleet.ops import cli
from fleet.ops.inventory import load_hosts

NAME = "pytest-ops1"


@pytest.fixture(scope="module")
def inventory_dir(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.fail("needs root to boot a lab machine (run the suite as scripts/test.sh does)")
    cfg = LabConfig.from_env()
    operations.up(cfg, [MachineSpec(NAME, "bookworm")], log=lambda _: None)
    directory = tmp_path_factory.mktemp("inv")
    data = operations.inventory(cfg, [NAME])
    data["all"]["children"]["app"] = {"hosts": {NAME: None}}
    (directory / "hosts.yml").write_text(yaml.safe_dump(data))
    yield directory
    operations.down(cfg, [NAME], log=lambda _: None)


def test_lab_inventory_templates_are_resolved():
    (host,) = load_hosts("inventories/lab", "fleet1")
    assert host.address == "10.231.0.11"
    assert host.key_file.endswith("/ssh/id_ed25519")
    assert host.known_hosts.endswith("/ssh/known_hosts")
    assert set(host.groups) == {"loadbalancers", "app", "postgres", "redis"}


def test_run_on_a_real_machine(inventory_dir, capsys):
    assert cli.main(["-i", str(inventory_dir), "run", "all", "--", "hostname"]) == 0
    assert f"== {NAME}: ok\n   {NAME}" in capsys.readouterr().out


def test_failing_command_fails(inventory_dir, capsys):
    assert cli.main(["-i", str(inventory_dir), "run", "all", "--", "false"]) == 1
    assert "FAILED" in capsys.readouterr().out


def test_status_reports_inactive_app(inventory_dir, capsys):
    assert cli.main(["-i", str(inventory_dir), "status"]) == 1
    assert "fastapi-fleet" in capsys.readouterr().out


def test_unknown_host_key_is_refused(inventory_dir, tmp_path, capsys):
    data = yaml.safe_load((inventory_dir / "hosts.yml").read_text())
    host = data["all"]["children"]["lab"]["hosts"][NAME]
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    host["ansible_ssh_common_args"] = f"-o UserKnownHostsFile={empty}"
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump(data))
    assert cli.main(["-i", str(tmp_path / "hosts.yml"), "run", "all", "--", "true"]) == 1
    assert "cannot connect" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["-i", "no/such/inventory", "status"], "does not exist"),
        (["run", "no-such-host", "--", "true"], "matches 'no-such-host'"),
        (["run", "all"], "give the command to run"),
    ],
)
def test_bad_requests(argv, message, capsys):
    assert cli.main(argv) == 2
    assert message in capsys.readouterr().err
