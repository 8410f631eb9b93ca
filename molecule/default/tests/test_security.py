"""The hardened baseline on the all-in-one host: SSH, the OS, TLS between the tiers, what the app exposes.

The audits print their figures (ssh-audit's failures and warnings, lynis' hardening index and
the suggestions it leaves); docs/security.md explains each one that remains.
"""

import re
import subprocess

import pytest
from audits import LYNIS_MIN_INDEX, fail2ban_bans_repeated_failures, lynis, print_lynis, print_ssh_audit, ssh_audit
from clients import APP_PYTHON, CA_FILE, curl, pg_query
from conftest import control_node_address, host_address, ssh_command, templated_vars

APP_PORT = 8000


@pytest.fixture(scope="module")
def v(host):
    return templated_vars(
        host,
        {
            "fleet_address": host_address(host),
            "postgresql_app_password": None,
            "postgresql_app_user": "fleet",
            "postgresql_app_db": "fleet",
        },
    )


# SSH -------------------------------------------------------------------------------------


def _sshd(host) -> dict[str, str]:
    lines = host.check_output("sshd -T").splitlines()
    return dict(line.split(" ", 1) for line in lines if " " in line)


def test_sshd_allows_keys_only_and_no_forwarding(host):
    sshd = _sshd(host)
    expected = {
        "passwordauthentication": "no",
        "kbdinteractiveauthentication": "no",
        "authenticationmethods": "publickey",
        "permitrootlogin": "without-password",  # the lab logs in as root, with a key
        "x11forwarding": "no",
        "allowtcpforwarding": "no",
        "allowagentforwarding": "no",
        "allowstreamlocalforwarding": "no",
        "permittunnel": "no",
        "maxauthtries": "3",
        "clientaliveinterval": "300",
        "clientalivecountmax": "2",
        "loglevel": "VERBOSE",
        "banner": "/etc/issue.net",
    }
    # OpenSSH prints prohibit-password by its old name on Debian 12.
    seen = {key: sshd.get(key, "").replace("prohibit-password", "without-password") for key in expected}
    assert seen == expected
    assert "Authorized access only" in host.file("/etc/issue.net").content_string


def test_sshd_offers_post_quantum_key_exchange_first(host):
    supported = host.check_output("ssh -Q kex").split()
    offered = _sshd(host)["kexalgorithms"].split(",")
    names = ("mlkem768x25519-sha256", "sntrup761x25519-sha512", "sntrup761x25519-sha512@openssh.com")
    post_quantum = [k for k in names if k in supported]
    assert post_quantum, "this OpenSSH has no post-quantum key exchange"
    assert offered[0] == post_quantum[0]
    assert not [k for k in offered if k.startswith(("ecdh-sha2-nistp", "diffie-hellman"))]
    host_keys = _sshd(host)["hostkeyalgorithms"].split(",")
    assert not [k for k in host_keys if "nistp" in k or k == "ssh-rsa"]
    bits = int(host.check_output("ssh-keygen -l -f /etc/ssh/ssh_host_rsa_key.pub").split()[0])
    assert bits >= 3072


def test_password_login_is_refused(host):
    # The server offers nothing but publickey; a client insisting on a password gets no prompt at all.
    proc = subprocess.run(
        ssh_command(
            host,
            "true",
            options=("-o", "PreferredAuthentications=password,keyboard-interactive", "-o", "PubkeyAuthentication=no"),
        ),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 255
    assert "Permission denied (publickey)" in proc.stderr, proc.stderr


def test_ssh_audit_finds_no_failure(host):
    audit = ssh_audit(host_address(host))
    print_ssh_audit(host.backend.hostname, audit)
    assert audit.failures == []
    # What is left is the X25519 exchange kept for clients without a post-quantum one (docs/security.md).
    assert all("post-quantum" in warning for warning in audit.warnings), audit.warnings


def test_fail2ban_bans_in_its_own_table_but_never_the_control_node(host):
    # Read from sshd's journal (Debian 12 and 13 have no auth.log).
    assert "Journal matches" in host.check_output("fail2ban-client status sshd")
    assert "nftables-multiport" in host.check_output("fail2ban-client get sshd actions")
    ignored = host.check_output("fail2ban-client get sshd ignoreip")
    control_node = control_node_address(host)
    assert control_node in ignored
    # The password attempts above came from the control node: it is not banned.
    assert control_node not in host.check_output("fail2ban-client get sshd banip")
    # A ban lands in fail2ban's table, beside the firewall's, and lifts again.
    probe = "192.0.2.77"
    host.check_output(f"fail2ban-client set sshd banip {probe}")
    try:
        assert probe in host.check_output("nft list table inet f2b-table")
        assert host.run("nft list table inet fastapi_fleet").rc == 0
    finally:
        host.check_output(f"fail2ban-client set sshd unbanip {probe}")
    assert probe not in host.check_output("nft list table inet f2b-table")


def test_repeated_failures_from_a_host_get_it_banned(host):
    # Invalid users from the host's own fleet address (not an admin network): banned after maxretry.
    source = host_address(host)
    outcome = fail2ban_bans_repeated_failures(host, source)
    assert f"banned: {source}" in outcome, outcome
    assert "refused: True" in outcome, outcome
    assert source not in host.check_output("fail2ban-client get sshd banip")


# Operating system ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("net.ipv4.conf.all.rp_filter", 1),
        ("net.ipv4.conf.all.accept_redirects", 0),
        ("net.ipv4.conf.all.send_redirects", 0),
        ("net.ipv4.conf.all.accept_source_route", 0),
        ("net.ipv4.conf.all.log_martians", 1),
        ("net.ipv4.tcp_syncookies", 1),
        ("net.ipv6.conf.all.accept_redirects", 0),
    ],
)
def test_network_hardening_is_live(host, key, value):
    assert host.sysctl(key) == value


def test_login_defaults_and_core_dumps(host):
    login_defs = host.file("/etc/login.defs")
    assert login_defs.contains("^UMASK\t027")
    assert login_defs.contains("^PASS_MAX_DAYS\t365")
    assert host.check_output("bash -lc umask") == "0027"
    assert host.check_output("bash -lc 'ulimit -c'") == "0"
    assert host.check_output("systemctl show -p DefaultLimitCORE --value") == "0"
    assert host.file("/etc/systemd/coredump.conf.d/60-fastapi-fleet.conf").contains("^Storage=none")
    assert "pam_pwquality.so" in host.file("/etc/pam.d/common-password").content_string
    # The deploy account: a locked password that never ages, so key logins never meet an expiry prompt.
    assert host.check_output("chage -l deploy | grep 'Maximum number'").endswith("-1")


@pytest.mark.parametrize("module", ["usb-storage", "dccp", "sctp", "cramfs"])
def test_blacklisted_modules_cannot_load(host, module):
    assert host.file("/etc/modprobe.d/60-fastapi-fleet-blacklist.conf").contains(f"^install {module} /bin/false$")
    # Containers have no modprobe (the kernel is the host's); real hosts resolve the module to /bin/false.
    if host.exists("modprobe"):
        assert "install /bin/false" in host.check_output(f"modprobe -n -v {module} 2>&1 || true")


def test_security_upgrades_install_themselves(host):
    assert host.package("unattended-upgrades").is_installed
    periodic = host.check_output("apt-config dump APT::Periodic")
    assert 'APT::Periodic::Unattended-Upgrade "1";' in periodic
    origins = host.check_output("apt-config dump Unattended-Upgrade::Origins-Pattern")
    assert "label=Debian-Security" in origins
    assert "codename=${distro_codename}," not in origins.replace("-security", "") or "Debian-Security" in origins
    assert 'Unattended-Upgrade::Automatic-Reboot "false";' in host.check_output("apt-config dump Unattended-Upgrade")


def test_deploy_user_has_no_sudo_and_no_keys(host):
    assert not host.file("/etc/sudoers.d/60-fastapi-fleet-deploy").exists
    assert not host.file("/home/deploy/.ssh/authorized_keys").exists
    assert host.run("runuser -u deploy -- sudo -n true").rc != 0


def test_auditd_only_where_the_kernel_is_the_hosts(host):
    in_container = host.check_output("systemd-detect-virt --container || true") != "none"
    if in_container:
        assert not host.package("auditd").is_installed
    else:
        assert host.service("auditd").is_running
        assert "-k identity" in host.check_output("auditctl -l")


def test_lynis_hardening_index(host):
    result = lynis(host)
    print_lynis(host.backend.hostname, result)
    assert result.index >= LYNIS_MIN_INDEX


# TLS between the tiers (the host is its own app host) -------------------------------------


def _dsn(v, sslmode: str, ca: str = CA_FILE, password: str | None = None) -> str:
    password = password or v["postgresql_app_password"]
    dsn = f"host={v['fleet_address']} port=5432 dbname={v['postgresql_app_db']} user={v['postgresql_app_user']}"
    dsn += f" password={password} sslmode={sslmode}"
    return dsn + (f" sslrootcert={ca}" if sslmode.startswith("verify") else "")


def test_postgresql_refuses_plaintext_from_an_app_host(host, v):
    answer = pg_query(host, _dsn(v, "disable"), "SELECT 1")
    assert "error" in answer
    assert "no encryption" in answer["message"], answer


def test_postgresql_refuses_a_server_that_another_ca_signed(host, v):
    host.check_output(
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=not-the-fleet-ca"
        " -keyout /tmp/wrong-ca.key -out /tmp/wrong-ca.crt 2>/dev/null"
    )
    answer = pg_query(host, _dsn(v, "verify-full", ca="/tmp/wrong-ca.crt"), "SELECT 1")
    assert "certificate verify failed" in answer.get("message", ""), answer


def test_postgresql_accepts_verify_full_tls_and_the_app_uses_it(host, v):
    answer = pg_query(host, _dsn(v, "verify-full"), "SELECT version FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
    assert answer.get("result") == ["TLSv1.3"], answer
    # Every connection of the app itself is encrypted.
    app = pg_query(
        host,
        _dsn(v, "verify-full"),
        "SELECT count(*) FILTER (WHERE NOT s.ssl) || '/' || count(*)"
        " FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid)"
        " WHERE a.application_name = 'fastapi-fleet-app' AND a.client_addr IS NOT NULL",
    )
    unencrypted, total = app["result"][0].split("/")
    assert unencrypted == "0" and int(total) > 0, app


def test_app_works_end_to_end_over_tls(host):
    status, body = curl(host, f"http://{host_address(host)}:{APP_PORT}/ready")
    assert status == 200, body
    assert '"postgres":"ok"' in body and '"redis":"ok"' in body
    env = host.file("/etc/fastapi-fleet/app.env").content_string
    assert re.search(r"^APP_REDIS_URL='rediss://", env, re.M)
    assert host.file(CA_FILE).mode == 0o644
    assert host.file(APP_PYTHON).exists


# What the app exposes ---------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/docs", "/redoc", "/openapi.json"])
def test_api_documentation_is_not_served(host, path):
    assert curl(host, f"http://{host_address(host)}:{APP_PORT}{path}")[0] == 404
    assert curl(host, f"https://{host_address(host)}{path}")[0] == 404


def test_metrics_only_for_loopback_and_the_monitoring_network(host):
    assert curl(host, f"http://127.0.0.1:{APP_PORT}/metrics")[0] == 200
    # The fleet address is neither loopback nor a monitoring network.
    assert curl(host, f"http://{host_address(host)}:{APP_PORT}/metrics")[0] == 403
    assert curl(host, f"https://{host_address(host)}/metrics")[0] == 403
