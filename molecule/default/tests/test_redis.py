"""The redis role, proved on every host of the scenario; the clients run on the host itself, an app
host (redis-py of the app's release, over TLS to the fleet address with the fleet's CA)."""

import pytest
import redis
from clients import host_python, redis_local, redis_tls
from conftest import facts, host_address, templated_vars


@pytest.fixture(scope="module")
def rd(host):
    host_facts = facts(host)
    v = templated_vars(
        host,
        {
            "fleet_address": host_address(host),
            "redis_port": 6379,
            "redis_bind": None,
            "redis_app_user": "fleet",
            "redis_app_password": None,
            "redis_admin_user": "admin",
            "redis_admin_password": None,
            "redis_memory_share": 0.25,
            "redis_maxmemory_mb": None,
            "redis_maxmemory_policy": "allkeys-lru",
            "redis_persistence": "none",
            "redis_tcp_backlog": 511,
        },
    )
    maxmemory_mb = v["redis_maxmemory_mb"]
    if maxmemory_mb is None:
        maxmemory_mb = int(host_facts["ansible_memtotal_mb"] * float(v["redis_memory_share"]))
    return {
        "address": v["fleet_address"],
        "port": int(v["redis_port"]),
        "host": host,
        "bind": v["redis_bind"] or ["127.0.0.1", v["fleet_address"]],
        "app_user": v["redis_app_user"],
        "app_password": v["redis_app_password"],
        "admin_user": v["redis_admin_user"],
        "admin_password": v["redis_admin_password"],
        "maxmemory": int(maxmemory_mb) * 1024 * 1024,
        "policy": v["redis_maxmemory_policy"],
        "persistence": v["redis_persistence"],
        "backlog": int(v["redis_tcp_backlog"]),
        "in_container": host_facts["ansible_virtualization_role"] == "guest"
        and host_facts["ansible_virtualization_type"] in ("container", "docker", "lxc", "podman", "systemd-nspawn"),
    }


def _client(rd, username=None, password=None):
    return redis_tls(rd["host"], rd["address"], rd["port"], username, password)


@pytest.fixture
def admin(rd):
    client = _client(rd, rd["admin_user"], rd["admin_password"])
    yield client
    client.close()


@pytest.fixture
def app(rd):
    client = _client(rd, rd["app_user"], rd["app_password"])
    yield client
    client.close()


def test_debian_redis_is_running(host):
    assert host.package("redis-server").is_installed
    service = host.service("redis-server")
    assert service.is_running
    assert service.is_enabled
    # Debian's hardened unit is kept, with the role's drop-in.
    assert host.file("/etc/systemd/system/redis-server.service.d/60-fastapi-fleet.conf").contains("LimitNOFILE=")
    assert host.check_output("systemctl show -p ProtectSystem --value redis-server") == "strict"


def test_binds_loopback_and_fleet_address_only(host, rd, admin):
    assert admin.config_get("bind")["bind"].split() == rd["bind"]
    for address in rd["bind"]:
        assert host.socket(f"tcp://{address}:{rd['port']}").is_listening
    assert not host.socket(f"tcp://0.0.0.0:{rd['port']}").is_listening
    assert admin.config_get("protected-mode")["protected-mode"] == "yes"


_RAW_RESP = r"""
import json, os, socket, ssl
spec = json.loads(os.environ["FLEET_CALL"])
context = ssl.create_default_context(cafile=spec["ca"]) if spec["tls"] else None
answers = []
with socket.create_connection((spec["address"], spec["port"]), timeout=5) as raw:
    conn = context.wrap_socket(raw, server_hostname=spec["address"]) if context else raw
    for command in spec["commands"]:
        conn.sendall(command.encode())
        try:
            answers.append(conn.recv(256).decode(errors="replace"))
        except OSError as exc:
            answers.append(f"error: {exc}")
print(json.dumps({"result": answers}))
"""


def _raw(rd, commands, tls=True):
    """Plain RESP commands without credentials, as any client would talk, over TLS (or not)."""
    call = {"address": rd["address"], "port": rd["port"], "tls": tls, "ca": "/etc/ssl/fastapi-fleet/ca.crt"}
    return host_python(rd["host"], _RAW_RESP, {**call, "commands": commands})["result"]


def test_unauthenticated_commands_are_refused(rd):
    commands = ["PING\r\n", "GET anything\r\n", "FLUSHALL\r\n"]
    for command, answer in zip(commands, _raw(rd, commands), strict=True):
        assert answer.startswith("-NOAUTH"), (command, answer)


def test_only_tls_is_spoken(rd, admin):
    # No plaintext TCP port; the TLS port answers nothing meaningful to plaintext RESP.
    assert admin.config_get("port")["port"] == "0"
    assert admin.config_get("tls-port")["tls-port"] == str(rd["port"])
    answers = _raw(rd, ["PING\r\n"], tls=False)
    assert not any(answer.startswith(("+PONG", "-NOAUTH")) for answer in answers), answers


def test_tls_with_another_ca_is_refused(rd):
    # A CA of its own, made on the client host: the server's certificate does not verify against it.
    host = rd["host"]
    host.check_output(
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=not-the-fleet-ca"
        " -keyout /tmp/wrong-ca.key -out /tmp/wrong-ca.crt 2>/dev/null"
    )
    wrong_ca = {"ssl_ca_certs": "/tmp/wrong-ca.crt"}
    client = redis_tls(host, rd["address"], rd["port"], rd["app_user"], rd["app_password"], **wrong_ca)
    with pytest.raises(redis.exceptions.ConnectionError, match=r"CERTIFICATE_VERIFY_FAILED|certificate verify failed"):
        client.ping()


def test_local_clients_use_the_unix_socket(host, rd):
    socket_file = host.file("/run/redis/redis-server.sock")
    assert socket_file.is_socket
    assert socket_file.group == "redis"
    assert socket_file.mode == 0o770
    assert redis_local(host, rd["admin_user"], rd["admin_password"]).ping() is True


def test_default_user_is_disabled(rd, admin):
    assert "off" in admin.acl_getuser("default")["flags"]
    with pytest.raises(redis.exceptions.AuthenticationError):
        _client(rd, "default", "").ping()


def test_wrong_app_password_is_refused(rd):
    with pytest.raises(redis.exceptions.AuthenticationError):
        _client(rd, rd["app_user"], rd["app_password"] + "x").ping()


def test_app_user_can_set_and_get(app):
    assert app.set("verifier:key", "value", ex=60)
    assert app.get("verifier:key") == "value"
    assert app.delete("verifier:key") == 1


DANGEROUS = [
    ("FLUSHALL",),
    ("FLUSHDB",),
    ("CONFIG", "GET", "maxmemory"),
    ("CONFIG", "SET", "maxmemory", "1mb"),
    ("KEYS", "*"),
    ("DEBUG", "SLEEP", "0"),
    ("SHUTDOWN", "NOSAVE"),
    ("ACL", "LIST"),
    ("MONITOR",),
    ("SAVE",),
    ("REPLICAOF", "NO", "ONE"),
]


@pytest.mark.parametrize("command", DANGEROUS, ids=lambda c: " ".join(c))
def test_app_user_acl_denies_dangerous_commands(rd, admin, command):
    # ACL DRYRUN asks the ACL engine without running the command (safe for SHUTDOWN, and
    # DEBUG, which Redis would refuse anyway because enable-debug-command is off).
    verdict = admin.execute_command("ACL", "DRYRUN", rd["app_user"], *command)
    assert "no permissions" in verdict


@pytest.mark.parametrize(
    "command",
    [("GET", "k"), ("SET", "k", "v"), ("EXPIRE", "k", "5"), ("SCAN", "0"), ("INCR", "n"), ("EVALSHA", "x", "0")],
)
def test_app_user_acl_allows_cache_commands(rd, admin, command):
    assert admin.execute_command("ACL", "DRYRUN", rd["app_user"], *command) == "OK"


@pytest.mark.parametrize("command", [c for c in DANGEROUS if c[0] in ("FLUSHALL", "FLUSHDB", "CONFIG", "KEYS", "ACL")])
def test_app_user_gets_noperm(app, command):
    app.set("verifier:survivor", "1", ex=60)
    with pytest.raises(redis.exceptions.NoPermissionError):
        app.execute_command(*command)
    assert app.get("verifier:survivor") == "1"


def test_acl_file_holds_no_plaintext_password(host, rd):
    acl = host.file("/etc/redis/users.acl")
    assert acl.user == "root"
    assert acl.group == "redis"
    assert acl.mode == 0o640
    content = acl.content_string
    assert rd["app_password"] not in content
    assert rd["admin_password"] not in content
    assert "user default off" in content


def test_maxmemory_and_policy(rd, admin):
    assert int(admin.config_get("maxmemory")["maxmemory"]) == rd["maxmemory"]
    assert admin.config_get("maxmemory-policy")["maxmemory-policy"] == rd["policy"]


def test_persistence_matches_choice(rd, admin):
    config = admin.config_get("*")
    expected_aof = "yes" if rd["persistence"] == "aof" else "no"
    assert config["appendonly"] == expected_aof
    if rd["persistence"] == "rdb":
        assert config["save"] != ""
    else:
        assert config["save"] == ""
    if rd["persistence"] == "aof":
        assert config["appendfsync"] == "everysec"


def test_backlog_fits_somaxconn(host, rd, admin):
    assert int(admin.config_get("tcp-backlog")["tcp-backlog"]) == rd["backlog"]
    assert host.sysctl("net.core.somaxconn") >= rd["backlog"]
    assert admin.config_get("supervised")["supervised"] == "systemd"


def test_kernel_settings_only_where_the_host_owns_its_kernel(host, rd):
    thp_unit = host.file("/etc/systemd/system/disable-thp.service")
    if rd["in_container"]:
        assert not thp_unit.exists
        sysctl_file = host.file("/etc/sysctl.d/61-redis.conf")
        assert not sysctl_file.exists or not sysctl_file.contains("vm.overcommit_memory")
    else:
        assert host.sysctl("vm.overcommit_memory") == 1
        assert "[never]" in host.file("/sys/kernel/mm/transparent_hugepage/enabled").content_string
        assert host.service("disable-thp").is_enabled


def test_log_file_and_logrotate(host):
    log = host.file("/var/log/redis/redis-server.log")
    assert log.exists
    assert log.contains("Ready to accept connections")
    conf = host.file("/etc/logrotate.d/redis-server")
    assert conf.contains("Ansible managed")
    assert conf.contains("^    rotate ")
    assert host.run("logrotate -d /etc/logrotate.d/redis-server").rc == 0
