"""Helpers for the fleet scenario's verifiers: every machine by name, probes between them."""

import concurrent.futures
import functools
import http.client
import json
import socket
import ssl
import sys
import uuid
from pathlib import Path

import pytest
import testinfra

# molecule/shared: what the deploy verifiers of both scenarios share.
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "shared"))

MACHINES = ("lb1", "app1", "app2", "db1", "cache1", "mon1")
CONTROL = "control"


@pytest.fixture(scope="session")
def inventory_file(request) -> str:
    path = request.config.option.ansible_inventory
    if not path:
        pytest.fail("run with --ansible-inventory (molecule passes its own)")
    return path


@pytest.fixture(scope="session")
def fleet(inventory_file) -> dict:
    """Every machine of the scenario, by name, as testinfra hosts."""
    return {name: testinfra.get_host(f"ansible://{name}", ansible_inventory=inventory_file) for name in MACHINES}


@functools.cache
def _variables(host) -> dict:
    return host.ansible.get_variables()


def address(host) -> str:
    """The address the scenario gave the machine (its fleet address)."""
    return _variables(host)["ansible_host"]


def tcp_open_from(fleet: dict, source: str, target: str, port: int, timeout: float = 2.0) -> bool:
    """Whether `source` (a machine or the control node) completes a TCP connect to target:port."""
    destination = address(fleet[target])
    if source == CONTROL:
        try:
            with socket.create_connection((destination, port), timeout=timeout):
                return True
        except OSError:
            return False
    probe = fleet[source].run(f"timeout {timeout} bash -c 'exec 3<>/dev/tcp/{destination}/{port}'")
    return probe.rc == 0


def tcp_matrix(fleet: dict, probes: list[tuple[str, str, int]]) -> dict[tuple[str, str, int], bool]:
    """Run many TCP probes in parallel (dropped connections take the whole timeout)."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        results = pool.map(lambda probe: tcp_open_from(fleet, *probe), probes)
        return dict(zip(probes, results, strict=True))


def _context() -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def request(lb_address: str, method: str, path: str, body: dict | None = None, request_id: str | None = None):
    """One HTTPS request from the control node through a load balancer: (status, parsed body or None)."""
    conn = http.client.HTTPSConnection(lb_address, 443, timeout=15, context=_context())
    try:
        headers = {"X-Request-ID": request_id or uuid.uuid4().hex, "User-Agent": "fleet-verifier"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        conn.request(method, path, body=data, headers=headers)
        response = conn.getresponse()
        raw = response.read()
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = None
        return response.status, parsed
    finally:
        conn.close()
