"""`fleet lab` refuses bad requests with one clear line and exit code 2, changing nothing."""

import pytest

from fleet import cli
from fleet.lab import system


def run_cli(capsys, *argv):
    code = cli.main(["lab", *argv])
    return code, capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["down"], "name the machines to remove, or pass --all"),
        (["down", "web1", "--all"], "give machine names or --all, not both"),
        (["down", "web1", "--purge"], "--purge only goes with --all"),
        (["up"], "name machines to bring up"),
        (["up", "Bad_Name"], "machine name 'Bad_Name'"),
        (["up", "web1:sid"], "unknown distro 'sid'"),
    ],
)
def test_bad_requests(capsys, tmp_path, monkeypatch, argv, message):
    monkeypatch.setenv("FLEET_LAB_DIR", str(tmp_path / "lab"))
    code, err = run_cli(capsys, *argv)
    assert code == 2
    assert err.startswith("fleet lab: error: ")
    assert message in err
    assert not (tmp_path / "lab").exists()


def test_not_root_is_refused_before_anything_changes(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("FLEET_LAB_DIR", str(tmp_path / "lab"))
    monkeypatch.setattr(system.os, "geteuid", lambda: 1000)
    code, err = run_cli(capsys, "up", "web1")
    assert code == 2
    assert "must run as root" in err
    assert not (tmp_path / "lab").exists()


def test_missing_tools_are_named_with_their_packages(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("FLEET_LAB_DIR", str(tmp_path / "lab"))
    monkeypatch.setattr(system.os, "geteuid", lambda: 0)
    monkeypatch.setattr(
        system.shutil, "which", lambda tool: None if tool in ("debootstrap", "systemd-nspawn") else "/x"
    )
    code, err = run_cli(capsys, "up", "web1")
    assert code == 2
    assert "systemd-nspawn (apt package systemd-container)" in err
    assert "debootstrap (apt package debootstrap)" in err
    assert not (tmp_path / "lab").exists()


def test_bad_environment_is_reported(capsys, monkeypatch):
    monkeypatch.setenv("FLEET_LAB_SUBNET", "nonsense")
    code, err = run_cli(capsys, "list")
    assert code == 2
    assert "FLEET_LAB_SUBNET" in err


def test_inventory_of_unknown_machine(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("FLEET_LAB_DIR", str(tmp_path))
    code, err = run_cli(capsys, "inventory", "ghost")
    assert code == 2
    assert "no such machine: ghost" in err


def test_unknown_command_is_argparse_error(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["lab", "explode"])
    assert exc.value.code == 2
