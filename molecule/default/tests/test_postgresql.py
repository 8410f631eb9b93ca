"""The postgresql role, proved on every host of the scenario (each host is also an app host).

Expected tuning is computed here from the host's facts and the inventory's variables with
PGTune's formulas (independently of the role's filter plugin), not hard-coded.
"""

import ipaddress
import math
import shlex

import pytest
import testinfra
from conftest import control_node_address, facts, host_address, inventory_vars, templated_vars

DEBIAN_VERSIONS = {"bookworm": 15, "trixie": 17}
WORK_MEM_DIVISOR = {"web": 1, "oltp": 1, "mixed": 2, "dw": 2}
RANDOM_PAGE_COST = {"ssd": 1.1, "hdd": 4.0, "san": 1.1, "nvme": 1.1}
UNITS_KB = {"kB": 1, "MB": 1024, "GB": 1024**2, "TB": 1024**3}


def _app_demand(host) -> int:
    """Connections the app hosts may open: workers (vCPUs by default) x pool maximum, plus one, per app host."""
    demand = 0
    for name in inventory_vars(host)["groups"]["app"]:
        app_host = testinfra.get_host(f"ansible://{name}", ansible_inventory=host.backend.ansible_inventory)
        app_facts = facts(app_host)
        v = templated_vars(
            app_host,
            {
                "app_workers": app_facts.get("ansible_processor_nproc", app_facts["ansible_processor_vcpus"]),
                "app_db_pool_max_size": 10,
            },
        )
        demand += int(v["app_workers"]) * int(v["app_db_pool_max_size"]) + 1
    return demand


@pytest.fixture(scope="module")
def pg(host):
    host_facts = facts(host)
    shares_host = bool({"app", "redis"} & set(inventory_vars(host)["group_names"]))
    v = templated_vars(
        host,
        {
            "fleet_address": host_address(host),
            "postgresql_version": DEBIAN_VERSIONS[host_facts["ansible_distribution_release"]],
            "postgresql_port": 5432,
            "postgresql_app_user": "fleet",
            "postgresql_app_db": "fleet",
            "postgresql_app_password": None,
            "postgresql_memory_share": 0.5 if shares_host else 1.0,
            "postgresql_memory_mb": None,
            "postgresql_cpus": host_facts["ansible_processor_vcpus"],
            "postgresql_profile": "web",
            "postgresql_storage": "ssd",
            "postgresql_max_connections": 0,
            "postgresql_connections_headroom_percent": 25,
            "postgresql_superuser_reserved_connections": 3,
            "postgresql_admin_connections": 10,
            "postgresql_tuning_overrides": {},
            "postgresql_backup_dir": "/var/backups/postgresql",
        },
    )
    return {
        "version": int(v["postgresql_version"]),
        "port": int(v["postgresql_port"]),
        "user": v["postgresql_app_user"],
        "db": v["postgresql_app_db"],
        "password": v["postgresql_app_password"],
        "address": v["fleet_address"],
        "memory_mb": int(
            v["postgresql_memory_mb"] or host_facts["ansible_memtotal_mb"] * float(v["postgresql_memory_share"])
        ),
        "cpus": int(v["postgresql_cpus"]),
        "profile": v["postgresql_profile"],
        "storage": v["postgresql_storage"],
        "max_connections": int(v["postgresql_max_connections"])
        or math.ceil(_app_demand(host) * (100 + int(v["postgresql_connections_headroom_percent"])) / 100)
        + int(v["postgresql_superuser_reserved_connections"])
        + int(v["postgresql_admin_connections"]),
        "superuser_reserved_connections": int(v["postgresql_superuser_reserved_connections"]),
        "overrides": v["postgresql_tuning_overrides"] or {},
        "backup_dir": v["postgresql_backup_dir"],
    }


def _superuser_sql(host, sql, db="postgres"):
    """Run SQL as the postgres superuser over the local socket (peer authentication)."""
    cmd = f"cd /tmp && runuser -u postgres -- psql -XAtq -d {shlex.quote(db)} -c {shlex.quote(sql)}"
    return host.check_output(cmd)


def _app_psql(host, pg, password, sql):
    """Connect as the app role over TCP to the host's fleet address, from the host itself (an app host)."""
    cmd = (
        f"PGPASSWORD={shlex.quote(password)} psql -XAtq -w -h {pg['address']} -p {pg['port']} "
        f"-U {shlex.quote(pg['user'])} -d {shlex.quote(pg['db'])} -c {shlex.quote(sql)}"
    )
    return host.run(cmd)


def _to_kb(text):
    number = text.rstrip("kMGTB")
    return int(number) * UNITS_KB[text[len(number) :]]


def _expected_tuning(pg):
    """PGTune (le0pard/pgtune) for Linux: the four values the verifier checks."""
    memory_kb = pg["memory_mb"] * 1024
    connections = pg["max_connections"]
    shared_buffers = memory_kb // 4
    workers = pg["cpus"] if pg["cpus"] >= 4 else 8
    work_mem = (memory_kb - shared_buffers) / ((connections + workers) * 3)
    work_mem = max(math.floor(work_mem / WORK_MEM_DIVISOR[pg["profile"]]), 4096)
    expected = {
        "shared_buffers": shared_buffers,
        "work_mem": work_mem,
        "max_connections": connections,
        "random_page_cost": RANDOM_PAGE_COST[pg["storage"]],
    }
    for name in expected:
        if name in pg["overrides"]:
            value = str(pg["overrides"][name])
            expected[name] = _to_kb(value) if name in ("shared_buffers", "work_mem") else type(expected[name])(value)
    return expected


def test_debian_postgresql_for_the_release_is_running(host, pg):
    assert host.package(f"postgresql-{pg['version']}").is_installed
    service = host.service(f"postgresql@{pg['version']}-main")
    assert service.is_running
    assert service.is_enabled
    assert _superuser_sql(host, "SHOW server_version_num")[:2] == str(pg["version"])


def test_listens_on_localhost_and_fleet_address_only(host, pg):
    assert host.socket(f"tcp://127.0.0.1:{pg['port']}").is_listening
    assert host.socket(f"tcp://{pg['address']}:{pg['port']}").is_listening
    assert not host.socket(f"tcp://0.0.0.0:{pg['port']}").is_listening
    assert _superuser_sql(host, "SHOW listen_addresses") == f"localhost,{pg['address']}"


def test_pg_hba_has_no_trust_and_only_scram_or_postgres_peer(host, pg):
    hba = host.file(f"/etc/postgresql/{pg['version']}/main/pg_hba.conf")
    assert hba.user == "postgres"
    assert hba.mode == 0o640
    sql = "SELECT type, array_to_string(database, ','), array_to_string(user_name, ','), auth_method"
    rules = _superuser_sql(host, sql + " FROM pg_hba_file_rules").splitlines()
    assert rules, "no pg_hba rules loaded"
    for rule in rules:
        kind, database, user, method = rule.split("|")
        if method == "peer":
            # The superuser, and the Prometheus exporter's role (pg_monitor) to the postgres database only.
            assert (kind, user) in (("local", "postgres"), ("local", "prometheus")), rule
            assert user == "postgres" or database == "postgres", rule
        else:
            assert method == "scram-sha-256", rule
            assert (database, user) == (pg["db"], pg["user"]), rule
    assert "trust" not in hba.content_string.split("# TYPE", 1)[1]


def test_app_password_is_a_scram_verifier(host, pg):
    assert _superuser_sql(host, "SHOW password_encryption") == "scram-sha-256"
    verifier = _superuser_sql(host, f"SELECT rolpassword FROM pg_authid WHERE rolname = '{pg['user']}'")
    assert verifier.startswith("SCRAM-SHA-256$")


def test_app_host_connects_with_the_right_password(host, pg):
    result = _app_psql(host, pg, pg["password"], "SELECT current_user || '@' || current_database()")
    assert result.rc == 0, result.stderr
    assert result.stdout.strip() == f"{pg['user']}@{pg['db']}"


def test_wrong_password_is_rejected(host, pg):
    result = _app_psql(host, pg, pg["password"] + "x", "SELECT 1")
    assert result.rc != 0
    assert "password authentication failed" in result.stderr


def test_non_app_client_is_refused_by_pg_hba(host, pg):
    # The control node is not in the app group. The firewall drops it before PostgreSQL sees it
    # (test_firewall.py); behind that, no pg_hba rule may cover its address either.
    control_node = ipaddress.ip_address(control_node_address(host))
    sql = "SELECT address || '|' || coalesce(netmask, '') FROM pg_hba_file_rules WHERE type LIKE 'host%'"
    rules = _superuser_sql(host, sql).splitlines()
    assert rules, "no host rules in pg_hba"
    for rule in rules:
        address, netmask = rule.split("|")
        prefix = bin(int(ipaddress.ip_address(netmask))).count("1") if netmask else None
        network = ipaddress.ip_network(address if prefix is None else f"{address}/{prefix}", strict=False)
        assert control_node not in network, rule


def test_tuning_matches_the_host(host, pg):
    expected = _expected_tuning(pg)
    assert _to_kb(_superuser_sql(host, "SHOW shared_buffers")) == expected["shared_buffers"]
    assert _to_kb(_superuser_sql(host, "SHOW work_mem")) == expected["work_mem"]
    assert int(_superuser_sql(host, "SHOW max_connections")) == expected["max_connections"]
    assert int(_superuser_sql(host, "SHOW superuser_reserved_connections")) == pg["superuser_reserved_connections"]
    assert float(_superuser_sql(host, "SHOW random_page_cost")) == expected["random_page_cost"]
    assert _superuser_sql(host, "SHOW checkpoint_completion_target") == "0.9"


def test_tuning_lives_in_the_role_conf_d_file(host, pg):
    conf = host.file(f"/etc/postgresql/{pg['version']}/main/conf.d/60-fastapi-fleet.conf")
    assert conf.contains("^shared_buffers = ")
    source = _superuser_sql(host, "SELECT sourcefile FROM pg_settings WHERE name = 'work_mem'")
    assert source == conf.path
    # Nothing left that needs a restart or failed to apply.
    assert _superuser_sql(host, "SELECT count(*) FROM pg_settings WHERE pending_restart") == "0"
    assert _superuser_sql(host, "SELECT count(*) FROM pg_file_settings WHERE error IS NOT NULL") == "0"


def test_pg_stat_statements_loaded_and_created(host, pg):
    assert "pg_stat_statements" in _superuser_sql(host, "SHOW shared_preload_libraries")
    assert _superuser_sql(host, "SELECT extname FROM pg_extension WHERE extname = 'pg_stat_statements'", pg["db"])
    assert int(_superuser_sql(host, "SELECT count(*) FROM pg_stat_statements", pg["db"])) > 0


def test_logging_settings_and_log_file(host, pg):
    for name, value in {
        "log_connections": "on",
        "log_disconnections": "on",
        "log_lock_waits": "on",
        "log_checkpoints": "on",
        "log_temp_files": "0",
    }.items():
        assert _superuser_sql(host, f"SHOW {name}") == value, name
    assert _superuser_sql(host, "SHOW log_min_duration_statement") != "-1"
    log = host.file(f"/var/log/postgresql/postgresql-{pg['version']}-main.log")
    assert log.exists
    assert log.contains("connection authorized")


def test_logrotate_config_is_valid(host):
    conf = host.file("/etc/logrotate.d/postgresql-common")
    assert conf.contains("Ansible managed")
    assert conf.contains("^    rotate ")
    assert host.run("logrotate -d /etc/logrotate.d/postgresql-common").rc == 0


def test_backup_runs_and_dump_restores(host, pg):
    timer = host.service("postgresql-backup.timer")
    assert timer.is_enabled
    assert timer.is_running
    before = set(host.check_output(f"ls -1 {pg['backup_dir']}").split())
    host.check_output("sleep 1 && systemctl start postgresql-backup.service")
    after = set(host.check_output(f"ls -1 {pg['backup_dir']}").split())
    new = sorted(after - before)
    assert len(new) == 1 and new[0].startswith(f"{pg['db']}-") and new[0].endswith(".dump"), new
    dump = host.file(f"{pg['backup_dir']}/{new[0]}")
    assert dump.user == "postgres"
    assert dump.mode == 0o600
    listing = host.check_output(f"pg_restore -l {dump.path}")
    assert f"dbname: {pg['db']}" in listing
    assert "pg_stat_statements" in listing
