"""The hardened baseline across the fleet: SSH on Debian 12 and 13, TLS between hosts, what the app exposes.

Clients run where the real ones live (the app hosts) and reach the data tiers at their fleet
addresses, which their certificates cover; the audits print their figures.
"""

import concurrent.futures
import subprocess
from pathlib import Path

import pytest
import redis
from audits import LYNIS_MIN_INDEX, fail2ban_bans_repeated_failures, lynis, print_lynis, print_ssh_audit, ssh_audit
from clients import CA_FILE, curl, pg_query, redis_tls
from conftest import address

testinfra_hosts = ["lb1"]

LAB_SECRETS = Path("/var/lib/fastapi-fleet-lab/secrets")
WRONG_CA = "/tmp/wrong-ca.crt"


def _secret(name: str) -> str:
    # The lab's generated secrets (inventories/lab/group_vars/all/secrets.yml).
    return (LAB_SECRETS / name).read_text().split()[0]


def _dsn(fleet, sslmode: str, ca: str = CA_FILE) -> str:
    dsn = f"host={address(fleet['db1'])} port=5432 dbname=fleet user=fleet password={_secret('db_password')}"
    return dsn + f" sslmode={sslmode}" + (f" sslrootcert={ca}" if sslmode.startswith("verify") else "")


def _wrong_ca(host) -> str:
    host.check_output(
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=not-the-fleet-ca"
        f" -keyout /tmp/wrong-ca.key -out {WRONG_CA} 2>/dev/null"
    )
    return WRONG_CA


@pytest.mark.parametrize("name", ["app1", "db1"], ids=["bookworm", "trixie"])
def test_ssh_audit_finds_no_failure(fleet, name):
    distribution = fleet[name].system_info.codename
    audit = ssh_audit(address(fleet[name]))
    print_ssh_audit(f"{name} ({distribution})", audit)
    assert audit.failures == []
    assert all("post-quantum" in warning for warning in audit.warnings), audit.warnings


def test_post_quantum_key_exchange_first_on_each_release(fleet):
    for name in ("app1", "app2"):
        offered = fleet[name].check_output("sshd -T | sed -n 's/^kexalgorithms //p'").split(",")
        expected = "mlkem768x25519-sha256" if fleet[name].system_info.codename == "trixie" else "sntrup761x25519-sha512"
        assert offered[0].startswith(expected), (name, offered)


def test_password_login_is_refused_everywhere(fleet):
    def attempt(name: str) -> subprocess.CompletedProcess:
        v = fleet[name].ansible.get_variables()
        command = ["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=5", "-o", "PubkeyAuthentication=no"]
        command += ["-o", "PreferredAuthentications=password,keyboard-interactive"]
        command += [*v["ansible_ssh_common_args"].split(), f"root@{address(fleet[name])}", "true"]
        return subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)

    with concurrent.futures.ThreadPoolExecutor(max_workers=5) as pool:
        results = dict(zip(fleet, pool.map(attempt, fleet), strict=True))
    for name, proc in results.items():
        assert proc.returncode == 255 and "Permission denied (publickey)" in proc.stderr, (name, proc.stderr)


def test_fail2ban_reads_debian_13s_sshd(fleet):
    # OpenSSH 10 logs from sshd-session processes; the jail still sees the failures and bans.
    source = address(fleet["db1"])
    outcome = fail2ban_bans_repeated_failures(fleet["db1"], source)
    assert f"banned: {source}" in outcome, outcome
    assert "refused: True" in outcome, outcome


def test_lynis_hardening_index(fleet):
    result = lynis(fleet["db1"])
    print_lynis("db1 (trixie)", result)
    assert result.index >= LYNIS_MIN_INDEX


# PostgreSQL on db1, from app1 ---------------------------------------------------------------


def test_postgresql_refuses_plaintext_from_an_app_host(fleet):
    answer = pg_query(fleet["app1"], _dsn(fleet, "disable"), "SELECT 1")
    assert "no encryption" in answer.get("message", ""), answer


def test_postgresql_with_another_ca_is_refused(fleet):
    answer = pg_query(fleet["app1"], _dsn(fleet, "verify-full", ca=_wrong_ca(fleet["app1"])), "SELECT 1")
    assert "certificate verify failed" in answer.get("message", ""), answer


def test_postgresql_verify_full_and_every_app_connection_is_encrypted(fleet):
    app1 = fleet["app1"]
    assert pg_query(app1, _dsn(fleet, "verify-full"), "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()") == {
        "result": [True]
    }
    rows = fleet["db1"].check_output(
        "runuser -u postgres -- psql -XAtq -d fleet -c \"SELECT count(*) FILTER (WHERE NOT s.ssl) || '/' || count(*)"
        " FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) WHERE a.application_name = 'fastapi-fleet-app'\""
    )
    unencrypted, total = rows.split("/")
    assert unencrypted == "0" and int(total) > 0, rows


# Redis on cache1, from app2 ------------------------------------------------------------------


def _redis(fleet, **extra):
    return redis_tls(fleet["app2"], address(fleet["cache1"]), 6379, "fleet", _secret("redis_password"), **extra)


def test_redis_speaks_tls_only(fleet):
    client = _redis(fleet)
    assert client.ping() is True
    assert client.set("verifier:tls", "1", ex=60) is True
    cache = address(fleet["cache1"])
    plain = fleet["app2"].run(
        f"timeout 3 bash -c 'exec 3<>/dev/tcp/{cache}/6379; printf \"PING\\r\\n\" >&3; head -c 64 <&3'"
    )
    assert "PONG" not in plain.stdout and "NOAUTH" not in plain.stdout, plain.stdout


def test_redis_with_another_ca_is_refused(fleet):
    client = _redis(fleet, ssl_ca_certs=_wrong_ca(fleet["app2"]))
    with pytest.raises(redis.exceptions.ConnectionError, match=r"CERTIFICATE_VERIFY_FAILED|certificate verify failed"):
        client.ping()


# The app's own port -------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/docs", "/redoc", "/openapi.json"])
def test_no_api_documentation_through_the_load_balancer_or_directly(fleet, path):
    assert curl(fleet["lb1"], f"https://{address(fleet['lb1'])}{path}")[0] == 404
    assert curl(fleet["lb1"], f"http://{address(fleet['app1'])}:8000{path}")[0] == 404


def test_metrics_only_from_loopback_and_the_monitoring_network(fleet):
    # lb1 may reach the app port (it is the load balancer) but is not a monitoring source.
    assert curl(fleet["lb1"], f"http://{address(fleet['app1'])}:8000/metrics")[0] == 403
    assert curl(fleet["lb1"], f"https://{address(fleet['lb1'])}/metrics")[0] == 403
    assert curl(fleet["app1"], "http://127.0.0.1:8000/metrics")[0] == 200
