"""The preflight's value forms: what each accepts and refuses, and how a refusal reads."""

import importlib.util
from pathlib import Path

import pytest
import yaml
from ansible.errors import AnsibleFilterError

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("fleet_checks", ROOT / "plugins" / "filter" / "fleet_checks.py")
assert _spec is not None and _spec.loader is not None
fleet_checks = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fleet_checks)

GOOD = [
    ("bool", [True, False]),
    ("port", [1, 8000, "443", 65535]),
    ("nginx_rate", ["20r/s", "300r/m"]),
    ("nginx_size", ["1m", "512k", "4096", "1G"]),
    ("nginx_zone_size", ["32k", "10m"]),
    ("nginx_time", ["30s", "500ms", "1h30m", "10"]),
    ("nginx_next_upstream", ["error timeout http_502 http_503 http_504", "off"]),
    ("dns_name", ["api.example.com", "fleet1", "*.example.com", "host.example.com."]),
    ("network", ["10.0.0.0/8", "127.0.0.1", "::1", "2001:db8::/32"]),
    ("cidr", ["10.1.0.0/16", "fd00::/8"]),
    ("pg_identifier", ["fleet", "app_db", "_x1"]),
    ("pg_listen", ["localhost", "*", "10.0.0.5", "::1"]),
    ("redis_bind", ["127.0.0.1", "-::1", "*", "-::*"]),
    ("redis_acl", ["~* &* +@all -@dangerous -@admin", "resetkeys ~cache:* +get +set"]),
    ("redis_user", ["fleet", "app.cache-1"]),
    ("share", [0.25, "0.5", 1]),
    ("probe_interval", [0.25, "0.5", 1, 10]),
    ("env_value", ["plain value", 42, "a,b;c=d"]),
    ("forwarded_ips", ["*", "10.0.1.10,10.0.1.11", "10.0.0.0/24"]),
    ("systemd_timespan", ["15min", "2week", "1h 30min"]),
    ("ssh_public_key", ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB0x me@laptop"]),
    ("release", ["0.1.0", "2024.06.01+build.3", "0.2.0-1a2b3c4d5e6f"]),
    ("prometheus_duration", ["30s", "5m", "1h30m", "15d", "500ms"]),
    ("prometheus_size", ["0", "512MB", "20GB"]),
    ("prometheus_durations", [{"TargetDown": "2m"}]),
    ("alert_thresholds", [{"app_5xx_ratio": 0.05, "tls_expiry_days": 14}]),
    ("cli_flag", ["--collector.systemd", "--web.listen-address=10.0.0.1:9100"]),
    ("http_url", ["http://10.231.0.1:9095/alerts", "https://alerts.example.internal/hook?x=1"]),
    ("pg_timestamp", ["", "2026-12-02 15:40:00+00", "2026-12-02T15:40:00.123456Z"]),
]

BAD = [
    ("bool", ["false", "yes", 0, None]),
    ("probe_interval", [0, 0.01, 11, "0.25\n", "0.25s", True, None]),
    ("port", [0, 65536, "http", -1, True]),
    ("nginx_rate", ["20r/h", "0r/s", "20r/s; return 200", "fast"]),
    ("nginx_size", ["1 m", "10mb", "1m;"]),
    ("nginx_zone_size", ["1k", "10x"]),
    ("nginx_time", ["30 s", "1.5s", "30s;"]),
    ("nginx_next_upstream", ["error non_idempotent", "off error", ""]),
    ("dns_name", ["api.example.com; return 200 x", "a..b", "10.0.0.1", "-bad.example.com", "a b"]),
    ("network", ["10.0.0.1/24", "10.0.0.0/33", "example.com", "10.0.0.1; allow all"]),
    ("cidr", ["10.0.0.5", "10.0.0.5/24"]),
    ("pg_identifier", ["Fleet", "fleet; DROP TABLE x", "1db", 'a"b', "x" * 64]),
    ("pg_listen", ["0.0.0.0/0", "db.example.com"]),
    ("redis_acl", ["~* +@all\nuser evil on nopass ~* +@all", ">password", "on"]),
    ("redis_user", ["fleet admin", "a\nb"]),
    ("share", [0, 1.5, "half"]),
    ("env_value", ["it's", "a\\b", "line\nAPP_X=1"]),
    ("forwarded_ips", ["10.0.0.1\nAPP_X=1", "10.0.0.1, host"]),
    ("ssh_public_key", ["ssh-ed25519 AAAA key\nssh-rsa AAAA other", "not a key"]),
    ("release", ["../etc", "x" * 65, ""]),
    ("prometheus_duration", ["30", "5 m", "1.5h", "2m;"]),
    ("prometheus_size", ["20G", "lots"]),
    ("prometheus_durations", [{"TargetDown": "soon"}, {"bad name": "2m"}]),
    ("alert_thresholds", [{"app_5xx_ratio": "high"}, {"x": -1}, {"x": True}]),
    ("cli_flag", ["--a b", "-v", "--x='1'", "--x=\\"]),
    ("http_url", ["ftp://x", "http://x/ y", "http://x/'"]),
    ("pg_timestamp", ["yesterday", "2026-12-02'; DROP TABLE x"]),
]


@pytest.mark.parametrize(("form", "values"), GOOD, ids=[g[0] for g in GOOD])
def test_forms_accept_good_values(form, values):
    for value in values:
        assert fleet_checks.invalid(value, form) == [], (form, value)


@pytest.mark.parametrize(("form", "values"), BAD, ids=[b[0] for b in BAD])
def test_forms_refuse_bad_values(form, values):
    for value in values:
        assert fleet_checks.invalid(value, form) != [], (form, value)


def test_a_refusal_names_host_variable_value_and_what_is_accepted():
    problems = fleet_checks.form_problems("lb1", {"nginx_rate_limit": "nginx_rate"}, ["20r/s; return 200 x"])
    assert problems == [
        "host lb1: nginx_rate_limit = '20r/s; return 200 x'"
        " — accepted: a positive request rate per second or minute, e.g. 20r/s or 300r/m"
    ]


def test_lists_and_mappings_name_their_bad_element_or_entry():
    problems = fleet_checks.form_problems(
        "app1",
        {"nginx_metrics_allow": "network", "app_env_extra": "env", "app_port": "port"},
        [["127.0.0.1", "10.0.0.0/33"], {"GOOD": "x", "BAD": "a\nb", "no-dash": "y"}, 8000],
    )
    assert problems[0].startswith("host app1: nginx_metrics_allow contains '10.0.0.0/33' — accepted: ")
    assert problems[1].startswith("host app1: app_env_extra['BAD'] = 'a\\nb' — accepted: ")
    assert problems[2].startswith("host app1: app_env_extra['no-dash'] = 'y' — accepted: ")
    assert len(problems) == 3


def test_a_bad_value_repeated_by_a_derived_default_is_reported_once():
    bad = "api.example.com; return 200 x"
    problems = fleet_checks.form_problems(
        "lb1",
        {"nginx_server_name": "dns_name", "nginx_tls_selfsigned_names": "host"},
        [bad, ["10.0.0.1", "lb1", bad]],
    )
    assert problems == [fleet_checks.message("lb1", "nginx_server_name", bad, fleet_checks.accepted("dns_name"))]
    # Two variables with the same bad value are two bad inputs.
    twice = fleet_checks.form_problems("lb1", {"a_timeout": "nginx_time", "b_timeout": "nginx_time"}, ["30 s", "30 s"])
    assert len(twice) == 2


def test_every_value_is_checked_and_every_form_is_known():
    with pytest.raises(AnsibleFilterError, match="one value per variable"):
        fleet_checks.form_problems("h", {"a": "port", "b": "port"}, [1])
    with pytest.raises(AnsibleFilterError, match="unknown form 'colour'"):
        fleet_checks.invalid("red", "colour")


def test_every_form_a_preflight_names_exists():
    for tasks in sorted(ROOT.glob("roles/*/tasks/preflight.yml")):
        for task in yaml.safe_load(tasks.read_text()):
            for name, form in ((task.get("vars") or {}).get(f"{tasks.parents[1].name}_preflight_forms") or {}).items():
                assert form in fleet_checks.FORMS, (tasks, name, form)


def test_secrets_are_never_shown():
    secrets = {"fleet_db_password": "example-db-password-change-me", "redis_app_password": ""}
    secrets["ok"] = "Jq8vN2xLr4TzW9cE7u"
    lab = fleet_checks.secret_problems("db1", secrets, lab=True)
    production = fleet_checks.secret_problems("db1", secrets | {"short": "s3cr3tS3cr3t"}, lab=False)
    assert lab == ["host db1: redis_app_password = (secret, not shown) — accepted: a non-empty secret"]
    assert [p.split(" = ")[0] for p in production] == [
        "host db1: fleet_db_password",
        "host db1: redis_app_password",
        "host db1: short",
    ]
    assert "placeholder" in production[0]
    assert "at least 16 characters" in production[2]
    assert not any("change-me" in p or "s3cr3t" in p for p in production)


def test_one_message_per_secret_value_wired_into_several_variables():
    secrets = {"fleet_db_password": "", "postgresql_app_password": "", "app_db_password": "", "other": "x" * 20}
    assert fleet_checks.secret_problems("app1", secrets, lab=True) == [
        "host app1: fleet_db_password = (secret, not shown) — accepted: a non-empty secret"
        " (the same value is in postgresql_app_password, app_db_password)"
    ]


def test_the_example_vault_values_are_placeholders():
    for value in ("example-db-password-change-me", "CHANGEME", "replace_me", "xxxxxxxx", "TODO"):
        assert fleet_checks.PLACEHOLDER.search(value), value
    assert not fleet_checks.PLACEHOLDER.search("Jq8vN2xLr4TzW9cE")


def test_sizes_in_bytes():
    assert fleet_checks.size_bytes("10m") == 10 * 1024 * 1024
    assert fleet_checks.size_bytes("512K") == 512 * 1024
    assert fleet_checks.size_bytes("4096") == 4096
    assert fleet_checks.size_bytes("ten") is None


def test_prometheus_durations_in_seconds():
    assert fleet_checks.duration_seconds("1h30m") == 5400
    assert fleet_checks.duration_seconds("500ms") == 0.5
    with pytest.raises(AnsibleFilterError):
        fleet_checks.duration_seconds("5 minutes")
