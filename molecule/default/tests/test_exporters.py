"""Debian 12's exporters and pgBackRest on the all-in-one host (the fleet scenario runs
Debian 13's and the monitoring host): each exporter listens on the fleet address only and
reads its tier, the firewall keeps them from the control node (no monitoring host in this
inventory), and pgBackRest archives WAL into a stanza with a backup and exports its state.
"""

import json
import socket

import pytest
from conftest import host_address

EXPORTERS = {
    # port: (unit, a line the exporter only shows when it reaches its tier)
    9100: ("prometheus-node-exporter", 'fleet_pgbackrest_max_age_seconds{stanza="fleet"} 93600'),
    9187: ("prometheus-postgres-exporter", "pg_up 1"),
    9121: ("prometheus-redis-exporter", "redis_up 1"),
    9113: ("prometheus-nginx-exporter", "nginx_up 1"),
}


@pytest.mark.parametrize("port", sorted(EXPORTERS))
def test_exporter_reads_its_tier_on_the_fleet_address(host, port):
    unit, line = EXPORTERS[port]
    assert host.service(unit).is_running
    address = host_address(host)
    assert host.socket(f"tcp://{address}:{port}").is_listening
    assert not host.socket(f"tcp://0.0.0.0:{port}").is_listening
    metrics = host.check_output(f"curl -fsS --max-time 10 http://{address}:{port}/metrics")
    assert line in metrics.splitlines(), f"{unit}: no '{line}'"


@pytest.mark.parametrize("port", sorted(EXPORTERS))
def test_exporters_are_closed_to_the_control_node(host, port):
    with pytest.raises(OSError), socket.create_connection((host_address(host), port), timeout=2):
        pass


def test_stub_status_answers_loopback_only(host):
    assert host.socket("tcp://127.0.0.1:8089").is_listening
    assert "Active connections" in host.check_output("curl -fsS http://127.0.0.1:8089/stub_status")
    assert not host.socket(f"tcp://{host_address(host)}:8089").is_listening


def test_pgbackrest_stanza_has_a_backup_and_archives_wal(host):
    info = json.loads(host.check_output("runuser -u postgres -- pgbackrest --stanza=fleet --output=json info"))[0]
    assert info["status"]["code"] == 0, info["status"]
    assert info["backup"], "no backup in the stanza"
    assert info["cipher"] == "aes-256-cbc"
    host.run_expect([0], "runuser -u postgres -- pgbackrest --stanza=fleet check")
    for kind in ("full", "diff"):
        timer = host.service(f"fastapi-fleet-pgbackrest-{kind}.timer")
        assert timer.is_enabled and timer.is_running


def test_a_backup_run_updates_its_metrics(host):
    host.run_expect([0], "systemctl start fastapi-fleet-pgbackrest@diff.service")
    run = host.file("/var/lib/prometheus/node-exporter/pgbackrest-run-diff.prom").content_string
    assert 'fleet_pgbackrest_last_run_success{stanza="fleet",type="diff"} 1' in run
    state = host.file("/var/lib/prometheus/node-exporter/pgbackrest.prom").content_string
    assert 'fleet_pgbackrest_backups{stanza="fleet",type="diff"}' in state
