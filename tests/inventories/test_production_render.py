"""The example production inventory renders correctly: every address comes from its groups.

Ansible itself renders the roles' templates with the production hostvars (tests/inventories/
render.yml, connection local, facts of the control node); the assertions compare the
result with the inventory's own hosts, so a template that hard-codes or mixes up an
address fails here.
"""

import re
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
LB_PRIVATE = ["10.0.1.10", "10.0.1.11"]
APP = ["10.0.2.21", "10.0.2.22", "10.0.2.23"]
DB = "10.0.3.31"
CACHE = "10.0.3.41"
MONITORING = "10.0.9.10"


def test_every_load_balancer_proxies_to_exactly_the_app_hosts(rendered):
    for lb in ("lb1.example.internal", "lb2.example.internal"):
        site = (rendered / lb / "site.conf").read_text()
        servers = re.findall(r"^\s*server (\S+):8000\b", site, re.M)
        assert servers == [f"{a}" for a in APP], site


def test_pg_hba_admits_exactly_the_app_hosts(rendered):
    hba = (rendered / "db1.example.internal" / "pg_hba.conf").read_text()
    remote = [line.split() for line in hba.splitlines() if line.startswith(("host ", "hostssl ", "hostnossl "))]
    clients = sorted(fields[3] for fields in remote if not fields[3].startswith(("127.", "::1")))
    assert clients == sorted(f"{a}/32" for a in APP), hba
    # Remote clients over TLS only.
    assert {fields[0] for fields in remote if not fields[3].startswith(("127.", "::1"))} == {"hostssl"}


@pytest.mark.parametrize("app_host", ["app1.example.internal", "app2.example.internal", "app3.example.internal"])
def test_app_env_points_at_the_data_tiers_and_trusts_only_the_load_balancers(rendered, app_host):
    env = dict(line.split("=", 1) for line in (rendered / app_host / "app.env").read_text().splitlines() if "=" in line)
    # TLS to both tiers, each server verified against the fleet's CA at the address the app uses.
    ca = "/etc/ssl/fastapi-fleet/ca.crt"
    assert re.fullmatch(
        rf"'postgresql://fleet:[^@]+@{re.escape(DB)}:5432/fleet\?sslmode=verify-full&sslrootcert={ca}'",
        env["APP_DATABASE_URL"],
    )
    assert re.fullmatch(
        rf"'rediss://fleet:[^@]+@{re.escape(CACHE)}:6379/0\?ssl_cert_reqs=required&ssl_ca_certs={ca}'",
        env["APP_REDIS_URL"],
    )
    # No API documentation; /metrics for loopback, the monitoring host and network only.
    assert env["APP_DOCS_ENABLED"] == "'false'"
    assert env["APP_METRICS_ALLOW_FROM"] == f"'127.0.0.1,::1,{MONITORING},10.0.9.0/24'"
    assert env["APP_FORWARDED_ALLOW_IPS"] == "'" + ",".join(LB_PRIVATE) + "'"
    own = {"app1.example.internal": APP[0], "app2.example.internal": APP[1], "app3.example.internal": APP[2]}[app_host]
    assert env["APP_BIND"] == f"'{own}:8000,127.0.0.1:8000'"


def test_hosts_render_only_their_own_tiers(rendered):
    assert not (rendered / "lb1.example.internal" / "pg_hba.conf").exists()
    assert not (rendered / "db1.example.internal" / "site.conf").exists()
