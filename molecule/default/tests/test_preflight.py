"""Bad inputs are refused by the preflight before any host changes.

Each case runs the preflight against the converged scenario with one bad input (extra
vars, or an inventory with a changed group): playbooks/preflight.yml, the play site.yml,
deploy.yml and rollback.yml import first, and for a few cases site.yml itself, which must
stop there (no play after it starts). Every case must fail in the preflight play with
one message naming the host, the variable, the value (never a secret's) and what is accepted,
with `changed=0` on every host; the configuration of every host (files, metadata, the `current`
release, the nftables ruleset) must be byte-for-byte the same after all cases as before them.
The cases run in parallel, each with its own fact cache, a copy of one gathered before them
(the hosts' facts do not change between the cases: gathering them once is enough).

Runs under `molecule verify` and by hand:
    pytest --hosts=ansible://all --ansible-inventory=/tmp/inv molecule/default/tests/test_preflight.py
"""

import concurrent.futures
import difflib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import testinfra
import yaml

REPO = Path(__file__).resolve().parents[3]
BIN = Path(sys.executable).parent
PARALLEL = 10
# Cases run through site.yml (the others through preflight.yml, which it imports first: the
# same checks without parsing every role, about 1.5 s of CPU less per case).
THROUGH_SITE = frozenset({"server-name-injection", "placeholder-secret-outside-lab", "two-postgres-hosts"})
# Where a run that got past the preflight would have started changing hosts.
FIRST_ROLE_PLAY = "PLAY [Base system on every host]"
CONFIG_STATE = r"""
for d in /etc/nginx /etc/postgresql /etc/redis /etc/fastapi-fleet /etc/systemd/system /etc/sysctl.d; do
    [ -e "$d" ] || continue
    find "$d" -xdev -printf '%p %y %m %u %g %l\n'
    find "$d" -xdev -type f -exec sha256sum {} +
done | sort
echo "current -> $(readlink /opt/fastapi-fleet/current)"
if command -v nft >/dev/null; then nft -s list ruleset | sha256sum; fi
"""
# A refusal line (the first one after Ansible's error prefix) in the run's output.
REFUSAL = re.compile(r"^(?:\[ERROR\]: Task failed: Action failed: )?((?:host \S+|inventory): .+ — accepted: .*)$", re.M)
WRONG_SECRET = "Wrong-But-Long-Secret-4711"
PLACEHOLDER_SECRET = "example-db-password-change-me"


@dataclass(frozen=True)
class Case:
    """One bad input: extra vars or an inventory change, and the refusal it must produce."""

    id: str
    group: str  # hosts of this group (or "inventory") are named in the message
    expect: str  # the message after "host <name>: "
    extra_vars: dict = field(default_factory=dict)
    inventory: str = ""  # "no_app", "two_postgres", "two_redis"
    secret: str = ""  # must not appear anywhere in the output


CASES = [
    Case(
        "server-name-injection",
        "loadbalancers",
        "nginx_server_name = 'api.example.com; return 200 x'",
        {"nginx_server_name": "api.example.com; return 200 x"},
    ),
    Case(
        "rate-limit-injection",
        "loadbalancers",
        "nginx_rate_limit = '20r/s; return 200 x'",
        {"nginx_rate_limit": "20r/s; return 200 x"},
    ),
    Case("rate-limit-per-hour", "loadbalancers", "nginx_rate_limit = '20r/h'", {"nginx_rate_limit": "20r/h"}),
    Case(
        "body-size-syntax",
        "loadbalancers",
        "nginx_client_max_body_size = '10mb'",
        {"nginx_client_max_body_size": "10mb"},
    ),
    Case("zone-too-small", "loadbalancers", "nginx_rate_limit_zone_size = '1k'", {"nginx_rate_limit_zone_size": "1k"}),
    Case("timeout-syntax", "loadbalancers", "nginx_proxy_read_timeout = '30 s'", {"nginx_proxy_read_timeout": "30 s"}),
    Case("https-port-range", "loadbalancers", "nginx_https_port = 70000", {"nginx_https_port": 70000}),
    Case("same-http-https-port", "loadbalancers", "nginx_https_port = 80", {"nginx_https_port": 80}),
    Case(
        "metrics-cidr",
        "loadbalancers",
        "nginx_metrics_allow contains '10.0.0.0/33'",
        {"nginx_metrics_allow": ["127.0.0.1", "10.0.0.0/33"]},
    ),
    Case(
        "real-ip-host-bits",
        "loadbalancers",
        "nginx_real_ip_from contains '10.0.0.1/8'",
        {"nginx_real_ip_from": ["10.0.0.1/8"]},
    ),
    Case(
        "no-certificate-source", "loadbalancers", "nginx_tls_certificate = ''", {"nginx_tls_selfsigned_allowed": False}
    ),
    Case(
        "certificate-not-pem",
        "loadbalancers",
        "nginx_tls_certificate = 'not a certificate'",
        {"nginx_tls_certificate": "not a certificate", "nginx_tls_key": "-----BEGIN PRIVATE KEY-----\nx\n"},
    ),
    Case("upstream-port-mismatch", "loadbalancers", "nginx_upstream_port = 8001", {"nginx_upstream_port": 8001}),
    Case("app-not-bound-where-lb-connects", "app", "app_bind_hosts = ['127.0.0.1']", {"app_bind_hosts": ["127.0.0.1"]}),
    Case("app-db-name-mismatch", "app", "app_db_name = 'other'", {"app_db_name": "other"}),
    Case("app-redis-user-mismatch", "app", "app_redis_user = 'other'", {"app_redis_user": "other"}),
    Case("pool-min-above-max", "app", "app_db_pool_min_size = 20", {"app_db_pool_min_size": 20}),
    Case(
        "env-extra-newline",
        "app",
        "app_env_extra['APP_X'] = 'a\\nAPP_DATABASE_URL=x'",
        {"app_env_extra": {"APP_X": "a\nAPP_DATABASE_URL=x"}},
    ),
    Case(
        "forwarded-ips-newline",
        "app",
        "app_forwarded_allow_ips = '10.0.0.1\\nAPP_X=1'",
        {"app_forwarded_allow_ips": "10.0.0.1\nAPP_X=1"},
    ),
    Case("app-port-zero", "app", "app_port = 0", {"app_port": 0}),
    Case("bool-as-string", "loadbalancers", "nginx_gzip = 'false'", {"nginx_gzip": "false"}),
    Case("conn-limit-above-nginx", "loadbalancers", "nginx_conn_limit = 65536", {"nginx_conn_limit": 65536}),
    Case(
        "static-path-shadows-health", "loadbalancers", "nginx_static_path = '/health'", {"nginx_static_path": "/health"}
    ),
    Case("app-workers-not-a-number", "app", "argument 'app_workers' is of type str", {"app_workers": "many"}),
    Case("app-log-level", "app", "app_log_level = 'verbose'", {"app_log_level": "verbose"}),
    Case("app-release-path", "app", "app_release = '../../etc'", {"app_release": "../../etc"}),
    Case(
        "app-db-password-mismatch",
        "app",
        "app_db_password = (secret, not shown)",
        {"app_db_password": WRONG_SECRET},
        secret=WRONG_SECRET,
    ),
    Case(
        "max-connections-too-low",
        "postgres",
        "postgresql_max_connections = 20 — accepted: at least",
        {"postgresql_max_connections": 20},
    ),
    Case(
        "pool-exceeds-budget",
        "postgres",
        "postgresql_max_connections = 40 — accepted: at least",
        {"postgresql_max_connections": 40, "app_db_pool_max_size": 100},
    ),
    Case(
        "sql-injection-role",
        "postgres",
        "postgresql_app_user = 'fleet; DROP ROLE postgres'",
        {"postgresql_app_user": "fleet; DROP ROLE postgres"},
    ),
    Case("app-db-is-postgres", "postgres", "postgresql_app_db = 'postgres'", {"postgresql_app_db": "postgres"}),
    Case(
        "hba-cidr-host-bits",
        "postgres",
        "postgresql_client_extra_cidrs contains '10.0.0.5/24'",
        {"postgresql_client_extra_cidrs": ["10.0.0.5/24"]},
    ),
    Case(
        "listen-address",
        "postgres",
        "postgresql_listen_addresses contains '0.0.0.0/0'",
        {"postgresql_listen_addresses": ["localhost", "0.0.0.0/0"]},
    ),
    Case(
        "override-max-connections",
        "postgres",
        "postgresql_tuning_overrides = {'max_connections': 5}",
        {"postgresql_tuning_overrides": {"max_connections": 5}},
    ),
    Case(
        "memory-shares-add-up",
        "redis",
        "redis_memory_share = 0.8 — accepted: shares that add up to at most 1",
        {"redis_memory_share": 0.8, "postgresql_memory_share": 0.5},
    ),
    Case(
        "redis-acl-injection",
        "redis",
        "redis_app_acl = '~* +@all\\nuser evil on nopass ~* +@all'",
        {"redis_app_acl": "~* +@all\nuser evil on nopass ~* +@all"},
    ),
    Case(
        "redis-user-default",
        "redis",
        "redis_app_user = 'default'",
        {"redis_app_user": "default", "app_redis_user": "default"},
    ),
    Case(
        "redis-bind-address",
        "redis",
        "redis_bind contains '10.231.0.999'",
        {"redis_bind": ["127.0.0.1", "10.231.0.999"]},
    ),
    Case("redis-maxclients-above-nofile", "redis", "redis_maxclients = 70000", {"redis_maxclients": 70000}),
    Case(
        "placeholder-secret-outside-lab",
        "all",
        "fleet_db_password = (secret, not shown) — accepted: a real secret",
        {"fleet_environment": "production", "fleet_db_password": PLACEHOLDER_SECRET},
        secret=PLACEHOLDER_SECRET,
    ),
    Case(
        "empty-secret",
        "all",
        "fleet_redis_password = (secret, not shown) — accepted: a non-empty secret",
        {"fleet_redis_password": ""},
    ),
    Case("unknown-environment", "all", "fleet_environment = 'staging'", {"fleet_environment": "staging"}),
    Case("timezone", "all", "common_timezone = 'Mars/Olympus_Mons'", {"common_timezone": "Mars/Olympus_Mons"}),
    Case(
        "sysctl-newline",
        "all",
        "common_sysctl_extra['vm.swappiness'] = '10\\nkernel.panic=1'",
        {"common_sysctl_extra": {"vm.swappiness": "10\nkernel.panic=1"}},
    ),
    Case(
        "ssh-key-newline",
        "all",
        "common_deploy_authorized_keys contains",
        {"common_deploy_authorized_keys": ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB0x a\nssh-rsa AAAAB3NzaC1yc2E b"]},
    ),
    Case("empty-app-group", "inventory", "inventory: group app = []", inventory="no_app"),
    Case("two-postgres-hosts", "inventory", "inventory: group postgres = [", inventory="two_postgres"),
    Case("two-redis-hosts", "inventory", "inventory: group redis = [", inventory="two_redis"),
]


def _inventory_option(request) -> str:
    inventory = request.config.getoption("ansible_inventory", None) or os.environ.get("MOLECULE_INVENTORY_FILE")
    if not inventory:
        pytest.skip("needs --ansible-inventory (or molecule's MOLECULE_INVENTORY_FILE)")
    return inventory


def _inventory_list(inventory: str) -> dict:
    proc = subprocess.run(
        [BIN / "ansible-inventory", "-i", inventory, "--list"], cwd=REPO, capture_output=True, text=True, check=True
    )
    return json.loads(proc.stdout)


def _derived_inventory(listing: dict, change: str, directory: Path) -> str:
    """The scenario's inventory (hosts with all their variables) with one group changed."""
    hostvars = listing["_meta"]["hostvars"]
    groups = {g: list(listing.get(g, {}).get("hosts", [])) for g in ("loadbalancers", "app", "postgres", "redis")}
    hosts = dict(hostvars)
    if change == "no_app":
        groups["app"] = []
    else:
        group = change.removeprefix("two_")
        first = groups[group][0]
        hosts[f"{first}-alias"] = hostvars[first]  # the same machine under a second name
        groups[group].append(f"{first}-alias")
    data = {"all": {"hosts": hosts, "children": {g: {"hosts": {h: {} for h in m}} for g, m in groups.items()}}}
    path = directory / f"{change}.yml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def _env(facts: Path) -> dict[str, str]:
    return os.environ | {
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_CACHE_PLUGIN": "jsonfile",
        "ANSIBLE_CACHE_PLUGIN_CONNECTION": str(facts),
    }


def _gather_facts(inventory: str, facts: Path) -> None:
    """The scenario hosts' facts, once, in the cache every case starts from."""
    command = [BIN / "ansible", "-i", inventory, "all", "--become", "-m", "ansible.builtin.gather_facts"]
    subprocess.run(command, cwd=REPO, env=_env(facts), capture_output=True, text=True, check=True, timeout=300)


def _run(case: Case, inventory: str, directory: Path) -> subprocess.CompletedProcess:
    facts = directory / f"facts-{case.id}"
    shutil.copytree(directory / "facts", facts)
    env = _env(facts)
    playbook = "site.yml" if case.id in THROUGH_SITE else "preflight.yml"
    command = [BIN / "ansible-playbook", "-i", inventory, str(REPO / "playbooks" / playbook)]
    if case.extra_vars:
        command += ["-e", json.dumps(case.extra_vars)]
    return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, check=False, timeout=900)


def _config_state(hosts) -> dict:
    return {h.backend.get_hostname(): h.check_output(CONFIG_STATE) for h in hosts}


@pytest.fixture(scope="module")
def refusals(request):
    """Run every case once (in parallel), with each host's configuration state before and after."""
    inventory = _inventory_option(request)
    listing = _inventory_list(inventory)
    machines = testinfra.get_hosts(["ansible://all"], ansible_inventory=inventory)
    before = _config_state(machines)
    with tempfile.TemporaryDirectory(prefix="preflight-") as tmp:
        directory = Path(tmp)
        inventories = {c.inventory: _derived_inventory(listing, c.inventory, directory) for c in CASES if c.inventory}
        _gather_facts(inventory, directory / "facts")
        with concurrent.futures.ThreadPoolExecutor(max_workers=PARALLEL) as pool:
            futures = {c.id: pool.submit(_run, c, inventories.get(c.inventory, inventory), directory) for c in CASES}
            results = {case_id: future.result() for case_id, future in futures.items()}
    after = _config_state(machines)
    return {"results": results, "before": before, "after": after, "listing": listing}


def test_there_are_enough_distinct_bad_inputs():
    assert len({c.id for c in CASES}) == len(CASES) >= 25
    assert {c.id for c in CASES} >= THROUGH_SITE


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_refused_by_the_preflight(case, refusals):
    proc = refusals["results"][case.id]
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output[-3000:]
    assert FIRST_ROLE_PLAY not in output, "the run got past the preflight"
    recap = re.findall(r"^(\S+)\s+: ok=\d+\s+changed=(\d+)", output, re.MULTILINE)
    assert recap, output[-3000:]
    assert all(changed == "0" for _, changed in recap), recap
    # One message per bad input (per host): every refusal line is about the expected variable.
    messages = REFUSAL.findall(output)
    subjects = [re.sub(r"^(host \S+|inventory): ", "", m).split(" ")[0] for m in messages]
    assert subjects and set(subjects) == {case.expect.removeprefix("inventory: ").split(" ")[0]}, messages
    hosts_named = [m.split(":")[0] for m in messages]
    assert len(hosts_named) == len(set(hosts_named)), messages
    if case.group == "inventory":
        assert case.expect in output, output[-3000:]
    else:
        listing = refusals["listing"]
        hosts = list(listing["_meta"]["hostvars"])
        if case.group != "all":
            hosts = listing.get(case.group, {}).get("hosts", [])
        pattern = rf"host ({'|'.join(map(re.escape, hosts))}): {re.escape(case.expect)}"
        assert re.search(pattern, output), f"no '{pattern}' in:\n{output[-3000:]}"
    if case.secret:
        assert case.secret not in output


def test_no_host_configuration_changed(refusals):
    for name, before in refusals["before"].items():
        after = refusals["after"][name]
        diff = "\n".join(difflib.unified_diff(before.splitlines(), after.splitlines(), "before", "after", lineterm=""))
        assert before == after, f"{name}:\n{diff}"
