"""A host nobody answers for is reported on its own line, exit code 3, no traceback; the others still run."""

import json
import socket

import pytest
from fleet_cli import fleet


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nothing listens there once the socket is closed


@pytest.mark.parametrize("command", [["status"], ["releases"], ["logs", "app"], ["run", "--", "true"]])
def test_unreachable_host_is_reported_per_host(write_inventory, closed_port, command):
    host = {"ansible_host": "127.0.0.1", "ansible_port": closed_port, "ansible_user": "nobody"}
    inventory = write_inventory({"app": {"ghost1": host, "ghost2": {**host, "ansible_host": "127.0.0.2"}}})
    done = fleet(command[0], "-i", str(inventory), *command[1:])
    assert done.returncode == 3, done
    assert "Traceback" not in done.stderr + done.stdout
    for name in ("ghost1", "ghost2"):
        assert f"{name}: UNREACHABLE: cannot connect" in done.stdout.replace(" | ", ": ")


def test_unreachable_in_json(write_inventory, closed_port):
    inventory = write_inventory({"redis": {"ghost1": {"ansible_host": "127.0.0.1", "ansible_port": closed_port}}})
    done = fleet("status", "--json", "-i", str(inventory))
    assert done.returncode == 3
    document = json.loads(done.stdout)
    assert document["ok"] is False
    (host,) = document["hosts"]
    assert host["reachable"] is False
    assert host["groups"] == ["redis"]
    assert "cannot connect" in host["error"]


def test_unreachable_load_balancer_in_smoke(write_inventory, closed_port):
    inventory = write_inventory(
        {"loadbalancers": {"lb9": {"ansible_host": "127.0.0.1", "nginx_https_port": closed_port}}, "app": {}}
    )
    done = fleet("smoke", "-i", str(inventory))
    assert done.returncode == 3, done
    assert "unreachable" in done.stdout and "Traceback" not in done.stderr
