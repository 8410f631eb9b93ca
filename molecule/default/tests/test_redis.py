"""The redis role, proved on every host of the scenario; client checks run from the control node (SSH tunnel)."""

import socket

import pytest
import redis
from conftest import facts, forwarded, host_address, templated_vars


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
        # The control node is a Redis client through an SSH tunnel (the firewall opens the port to app hosts only).
        "forwarded": forwarded(host, int(v["redis_port"])),
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
    host, port = rd["forwarded"]
    return redis.Redis(
        host=host,
        port=port,
        username=username,
        password=password,
        socket_timeout=5,
        decode_responses=True,
    )


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


def test_unauthenticated_commands_are_refused(rd):
    # Plain RESP over a socket, as any client without credentials would talk.
    with socket.create_connection(rd["forwarded"], timeout=5) as conn:
        for command in (b"PING\r\n", b"GET anything\r\n", b"FLUSHALL\r\n"):
            conn.sendall(command)
            assert conn.recv(256).startswith(b"-NOAUTH"), command


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
