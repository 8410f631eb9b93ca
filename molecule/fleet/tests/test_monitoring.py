"""Monitoring of the fleet, checked from the monitoring host and the control node.

Every target generated from the inventory is `up` in Prometheus on mon1; the exporters answer
only the monitoring host; with app1's service stopped, TargetDown for app1 is firing in
Alertmanager within its `for:` plus two scrape intervals and resolves after the restart, and
a webhook receiver on the control node (the lab bridge address, where the lab inventory's
monitoring_alert_webhook_url points) records both notifications. The APIs are asked from
mon1 itself (testinfra), so nothing depends on SSH forwarding.
"""

import http.server
import json
import shlex
import threading
import time
import urllib.parse

import pytest
from conftest import CONTROL, MACHINES, address, tcp_matrix

testinfra_hosts = ["lb1"]

APP_UNITS = "fastapi-fleet.socket fastapi-fleet.service"
WEBHOOK = ("10.231.0.1", 9095)
# What the scenario sets (inventory/group_vars/all/scenario.yml).
SCRAPE_INTERVAL = 10
TARGET_DOWN_FOR = 10
# The verifier sees Alertmanager through SSH polls (about a second each on a loaded CI machine).
OBSERVATION_SLACK = 5
# Every job and the hosts it scrapes, from the scenario's groups.
EXPECTED_TARGETS = {
    "node": set(MACHINES),
    "app": {"app1", "app2"},
    "ready": {"app1", "app2"},
    "postgres": {"db1"},
    "redis": {"cache1"},
    "nginx": {"lb1"},
    "https": {"lb1"},
    "prometheus": {"mon1"},
    "alertmanager": {"mon1"},
}


def _api(fleet, port: int, path: str) -> dict | list:
    mon = fleet["mon1"]
    url = f"http://{address(mon)}:{port}{path}"
    return json.loads(mon.check_output(f"curl -fsS --max-time 10 {shlex.quote(url)}"))


def _targets(fleet) -> list[dict]:
    return _api(fleet, 9090, "/api/v1/targets?state=active")["data"]["activeTargets"]


def _wait(predicate, timeout: float, step: float = 1.0):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(step)


def _all_up(fleet) -> bool:
    return all(t["health"] == "up" for t in _targets(fleet))


def test_every_target_from_the_inventory_is_up(fleet):
    assert _wait(lambda: _all_up(fleet), 60), [
        (t["labels"]["job"], t["labels"]["instance"], t["health"], t["lastError"])
        for t in _targets(fleet)
        if t["health"] != "up"
    ]
    found: dict[str, set[str]] = {}
    for target in _targets(fleet):
        found.setdefault(target["labels"]["job"], set()).add(target["labels"]["instance"])
    assert found == EXPECTED_TARGETS


def test_every_alert_rule_is_loaded(fleet):
    groups = _api(fleet, 9090, "/api/v1/rules?type=alert")["data"]["groups"]
    names = {rule["name"] for group in groups for rule in group["rules"]}
    assert {"TargetDown", "AppNotReady", "BackupTooOld", "PostgresConnectionsHigh", "RedisDown"} <= names
    assert len(names) == 22, sorted(names)
    unhealthy = [r["name"] for g in groups for r in g["rules"] if r.get("health") not in ("ok", "unknown")]
    assert unhealthy == []


@pytest.mark.parametrize(
    ("metric", "instance"),
    [
        ("pg_settings_max_connections", "db1"),
        ("redis_memory_max_bytes", "cache1"),
        ("nginx_connections_active", "lb1"),
        ("app_http_requests_total", "app2"),
        ("probe_ssl_earliest_cert_expiry", "lb1"),
        ("fleet_pgbackrest_last_success_timestamp_seconds", "db1"),
        ("node_systemd_unit_state", "mon1"),
    ],
)
def test_each_tier_reports_its_metrics(fleet, metric, instance):
    query = urllib.parse.quote(f'count({metric}{{instance="{instance}"}})')
    result = _api(fleet, 9090, f"/api/v1/query?query={query}")["data"]["result"]
    assert result and float(result[0]["value"][1]) > 0, f"no {metric} from {instance}"


def test_backup_is_recent_and_no_backup_alert_fires(fleet):
    query = urllib.parse.quote("time() - fleet_pgbackrest_last_success_timestamp_seconds")
    result = _api(fleet, 9090, f"/api/v1/query?query={query}")["data"]["result"]
    assert len(result) == 1
    age = float(result[0]["value"][1])
    print(f"\nnewest backup on db1: {age:.0f} s old")
    assert age < 26 * 3600
    alerts = _api(fleet, 9090, "/api/v1/alerts")["data"]["alerts"]
    assert not [a for a in alerts if a["labels"]["alertname"].startswith("Backup")]


def test_exporters_answer_only_the_monitoring_host(fleet):
    exporters = [("lb1", 9113), ("db1", 9187), ("cache1", 9121), ("app2", 9100), ("db1", 9100)]
    sources = ("mon1", "lb1", "app1", CONTROL)
    probes = [(source, target, port) for target, port in exporters for source in sources if source != target]
    for (source, target, port), is_open in tcp_matrix(fleet, probes).items():
        assert is_open == (source == "mon1"), f"{source} -> {target}:{port} open={is_open}"


class _Receiver(http.server.ThreadingHTTPServer):
    """Alertmanager's webhook notifications, as received."""

    def __init__(self) -> None:
        self.notifications: list[tuple[float, dict]] = []
        super().__init__(WEBHOOK, _Handler)


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.notifications.append((time.monotonic(), json.loads(body)))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def webhook():
    receiver = _Receiver()
    thread = threading.Thread(target=receiver.serve_forever, daemon=True)
    thread.start()
    yield receiver
    receiver.shutdown()
    receiver.server_close()


def _app1_target_down(fleet) -> list[dict]:
    flt = urllib.parse.quote('alertname="TargetDown"') + "&filter=" + urllib.parse.quote('instance="app1"')
    alerts = _api(fleet, 9093, f"/api/v2/alerts?active=true&silenced=false&inhibited=false&filter={flt}")
    return [a for a in alerts if a["labels"].get("job") == "app" and a["status"]["state"] == "active"]


def _notified(webhook: _Receiver, status: str, since: float) -> float | None:
    for at, body in webhook.notifications:
        for alert in body.get("alerts", []):
            labels = alert["labels"]
            if (labels.get("alertname"), labels.get("instance"), labels.get("job"), alert["status"]) == (
                "TargetDown",
                "app1",
                "app",
                status,
            ) and at >= since:
                return at
    return None


def test_app_down_fires_in_alertmanager_and_resolves_and_the_webhook_hears_both(fleet, webhook):
    app1 = fleet["app1"]
    # A clean start: app1 up and no alert left from an earlier test.
    assert _wait(lambda: not _app1_target_down(fleet) and _all_up(fleet), 90), "app1 not back up before the test"
    bound = TARGET_DOWN_FOR + 2 * SCRAPE_INTERVAL
    stopped = time.monotonic()
    app1.run_expect([0], f"systemctl stop {APP_UNITS}")
    try:
        firing = _wait(lambda: _app1_target_down(fleet), bound + 30, step=0.5)
        fired_after = time.monotonic() - stopped
        assert firing, "TargetDown for app1 never fired"
        notified = _wait(lambda: _notified(webhook, "firing", stopped), 30, step=0.5)
    finally:
        restarted = time.monotonic()
        app1.run_expect([0], f"systemctl start {APP_UNITS}")
    resolved = _wait(lambda: not _app1_target_down(fleet), 60, step=0.5)
    resolved_after = time.monotonic() - restarted
    resolved_notice = _wait(lambda: _notified(webhook, "resolved", restarted), 60, step=0.5)
    print(
        f"\nTargetDown app1: firing in Alertmanager {fired_after:.1f} s after the stop (for: {TARGET_DOWN_FOR} s, "
        f"scrape {SCRAPE_INTERVAL} s, bound {bound} s); webhook firing "
        f"{(notified or 0) - stopped:.1f} s; resolved {resolved_after:.1f} s after the restart, webhook resolved "
        f"{(resolved_notice or 0) - restarted:.1f} s"
    )
    assert fired_after <= bound + OBSERVATION_SLACK, (
        f"fired after {fired_after:.1f} s: more than for: + two scrape intervals ({bound} s)"
        f" + {OBSERVATION_SLACK} s of polling"
    )
    assert notified, "the webhook receiver got no firing notification"
    assert resolved, "TargetDown for app1 did not resolve after the restart"
    assert resolved_notice, "the webhook receiver got no resolved notification"
