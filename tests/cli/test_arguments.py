"""Bad input gets one clear line and exit code 2 before anything runs; one parser, shared exit codes."""

import pytest
from fleet_cli import FLEET, fleet

from fleet import cli
from fleet.errors import ExitCode


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["status", "-i", "no/such/inventory"], "inventory no/such/inventory does not exist"),
        (["status", "--forks", "0"], "--forks must be at least 1"),
        (["status", "-i", "inventories/production"], "(pass --vault-password-file or --ask-vault-pass)"),
        (["status", "-i", "inventories/lab", "-l", "no-such-host"], "matches 'no-such-host'"),
        (["status", "--vault-password-file", "/no/such/file"], "vault password file /no/such/file does not exist"),
        (["run"], "give the command to run after --"),
        (["run", "--", "  "], "give the command to run after --"),
        (["logs", "redis", "-n", "0"], "-n/--lines must be at least 1"),
        (["logs", "rm -rf /"], "is neither a fleet service"),
        (["smoke", "--ca-file", "/no/such/ca.pem"], "CA file /no/such/ca.pem does not exist"),
        (["bench", "--duration", "0"], "--duration must be 1..120, not 0"),
        (["bench", "--threads", "4", "--connections", "2"], "--connections must be at least --threads"),
        (["bench", "--deployments", "naive,fast"], "--deployments takes naive, tuned or both"),
        (["bench", "-e", "@/no/such/vars.yml"], "extra variables file /no/such/vars.yml does not exist"),
        (["bench", "-i", "inventories/lab"], "fleet1: nginx_static_path is empty"),
        (["bench", "ansible", "--sizes", "1,5"], "--sizes takes fleet sizes from 2 to 40"),
        (["bench", "ansible", "--settings", "bundle,turbo"], "unknown setting turbo"),
        (["bench", "ansible", "--first-address", "10.231.0.250"], "20 addresses from 10.231.0.250 do not fit"),
        (["bench", "loopback", "--duration", "0"], "--duration must be at least 1"),
        (["lab", "down"], "name the machines to remove, or pass --all"),
    ],
)
def test_bad_requests(argv, message, capsys):
    assert cli.main(argv) == ExitCode.USAGE
    err = capsys.readouterr().err
    assert err.startswith(f"fleet {argv[0]}: error: ")
    assert message in err
    assert "Traceback" not in err


def test_pattern_outside_the_group(capsys, vault_file):
    argv = ["releases", "-i", "inventories/production", "--vault-password-file", str(vault_file), "-l", "db1*"]
    assert cli.main(argv) == ExitCode.USAGE
    assert "no host matching 'db1*' is in the app group" in capsys.readouterr().err


def test_templated_connection_variable_is_refused(write_inventory, capsys):
    inventory = write_inventory({"app": {"web1": {"ansible_host": "{{ lookup('env', 'X') }}"}}})
    assert cli.main(["run", "-i", str(inventory), "--", "true"]) == ExitCode.USAGE
    err = capsys.readouterr().err
    assert "host web1: ansible_host is a template" in err


@pytest.mark.parametrize("argv", [["explode"], ["status", "--no-such-option"], []])
def test_argparse_errors_exit_2(argv):
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == ExitCode.USAGE


def test_one_console_script():
    scripts = {p.name for p in FLEET.parent.iterdir() if p.name.startswith("fleet")}
    assert scripts == {"fleet"}
    done = fleet("--help")
    assert done.returncode == 0
    for command in ("status", "logs", "releases", "smoke", "run", "lab", "bench", "docs"):
        assert f"    {command} " in done.stdout
