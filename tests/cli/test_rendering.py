"""What the commands read from a host's output and how they show it (tables and JSON)."""

import io
import json

import pytest
from rich.console import Console

from fleet.errors import ExitCode
from fleet.ops import logs, releases, run, smoke, status
from fleet.ops.inventory import Host
from fleet.ops.output import exit_code
from fleet.ops.remote import Result

GROUPS = ("app", "loadbalancers", "postgres", "redis")
HOST = Host("web1", GROUPS, {"ansible_host": "203.0.113.5", "fleet_address": "10.0.0.5"})

HEALTHY = (
    "load\t0.50 0.40 0.30\n"
    "mem\t2048000\t1024000\n"
    "disk\t10485760\t2621440\t7864320\n"
    "unit\tnginx\tnginx.service\tactive\n"
    "unit\tpostgresql\tpostgresql@15-main.service\tactive\n"
    "unit\tredis\tredis-server.service\tactive\n"
    "unit\tapp\tfastapi-fleet.service\tactive\n"
    "release\t/opt/fastapi-fleet/releases/0.1.0\n"
    'probe\thealth\thttp://10.0.0.5:8000/health\t{"status":"ok"}\t200\n'
    'probe\tready\thttp://10.0.0.5:8000/ready\t{"status":"ok","checks":{"postgres":"ok","redis":"ok"}}\t200\n'
)


def render(table) -> str:
    out = io.StringIO()
    Console(file=out, width=250).print(table)
    return out.getvalue()


def test_status_script_asks_the_real_units_at_the_bound_address():
    script = status.status_script(HOST)
    assert "pg_lsclusters" in script and "postgresql@*-main.service" in script
    assert "u postgresql postgresql\n" not in script  # not Debian's umbrella unit
    assert "u redis redis-server.service" in script
    assert "p ready http://10.0.0.5:8000/ready" in script  # fleet_address, not ansible_host
    assert "readlink /opt/fastapi-fleet/current" in script


def test_healthy_host():
    found = status.parse_status(HOST, Result("web1", 0, HEALTHY, ""))
    assert found.ok
    assert found.release == "0.1.0"
    assert found.load == [0.5, 0.4, 0.3]
    assert found.memory == {"total_mb": 2000, "used_pct": 50}
    assert found.disk["used_pct"] == 25
    text = render(status.render([found]))
    assert "postgresql active (postgresql@15-main.service)" in text
    assert "50% of 2000 MB" in text


def test_down_redis_and_failing_ready_are_not_ok():
    broken = HEALTHY.replace("redis-server.service\tactive", "redis-server.service\tinactive").replace(
        '{"status":"ok","checks":{"postgres":"ok","redis":"ok"}}\t200',
        '{"status":"unavailable","checks":{"postgres":"ok","redis":"error: ConnectionError"}}\t503',
    )
    found = status.parse_status(HOST, Result("web1", 0, broken, ""))
    assert not found.ok
    text = render(status.render([found]))
    assert "redis inactive" in text
    assert "503 redis: error: ConnectionError" in text
    document = found.to_json()
    assert document["ok"] is False
    assert document["ready"]["status"] == 503
    json.dumps(document)


def test_missing_cluster_and_no_answer():
    output = "unit\tpostgresql\tpostgresql@*-main.service\tnot-found\nprobe\thealth\thttp://x/health\t\t000\n"
    found = status.parse_status(Host("db1", ("postgres", "app"), {}), Result("db1", 0, output, ""))
    assert not found.ok
    assert found.health.status == 0
    assert "no answer" in render(status.render([found]))


def test_unreachable_row():
    found = status.parse_status(HOST, Result("web1", None, "", "", "cannot connect: refused"))
    assert not found.ok and not found.reachable
    assert "UNREACHABLE" in render(status.render([found]))


def test_releases_marks_current():
    output = "current\t/opt/fastapi-fleet/releases/0.2.0\nrelease\t1700000100.5\t0.2.0\nrelease\t1700000000.0\t0.1.0\n"
    found = releases.parse_releases(Result("web1", 0, output, ""))
    assert found.ok
    assert [(r["release"], r["current"]) for r in found.releases] == [("0.1.0", False), ("0.2.0", True)]
    assert not releases.parse_releases(Result("web1", 0, "current\t\n", "")).ok


@pytest.mark.parametrize(
    ("words", "command"),
    [
        (["--", "df -h / | tail -1"], "df -h / | tail -1"),
        (["--", "echo", "a b"], "echo 'a b'"),
        (["uptime"], "uptime"),
    ],
)
def test_run_command_line(words, command):
    assert run.command_line(words) == command


def test_log_lines_are_prefixed_even_when_split(capsys):
    sink = logs.HostLines("db1", 6, as_json=False)
    sink.write("first li")
    sink.write("ne\nsecond line\npart")
    assert capsys.readouterr().out == "db1    | first line\ndb1    | second line\n"


def test_become_goes_through_sudo():
    admin = Host("a", ("app",), {"ansible_user": "admin", "ansible_become": True})
    assert logs.journal_command(admin, "nginx.service", 5, False).startswith("sudo -n -- sh -c ")
    assert not logs.journal_command(HOST, "nginx.service", 5, True).startswith("sudo")


def test_rate_parsing():
    assert smoke.rate_per_second("20r/s") == 20
    assert smoke.rate_per_second("600r/m") == 10
    with pytest.raises(Exception, match="not like 20r/s"):
        smoke.rate_per_second("fast")


def test_exit_codes():
    ok, failed, unreached = Result("a", 0, "", ""), Result("b", 1, "", ""), Result("c", None, "", "", "x")
    assert exit_code([ok], failed=False) == ExitCode.OK
    assert exit_code([ok, failed], failed=True) == ExitCode.FAILED
    assert exit_code([ok, failed, unreached], failed=True) == ExitCode.UNREACHABLE
