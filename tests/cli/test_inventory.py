"""Hosts come from `ansible-inventory --list`: groups (nested too), connection settings, vault, patterns."""

import pytest

from fleet.errors import FleetError
from fleet.ops.inventory import InventorySource, load_hosts, parse_inventory, parse_ssh_options, resolve_source
from fleet.ops.services import SERVICES, app_url, setting, unit_name

TIERS = {"loadbalancers", "app", "postgres", "redis"}


def production(vault_file, pattern="all"):
    return load_hosts(resolve_source("inventories/production", str(vault_file)), pattern)


def test_lab_is_the_default_inventory():
    (host,) = load_hosts(InventorySource(), "all")
    assert host.name == "fleet1"
    assert host.address == host.private_address == "10.231.0.11"
    assert set(host.groups) == TIERS | {"monitoring"}
    assert host.user == "root" and not host.become
    assert host.key_file == "/var/lib/fastapi-fleet-lab/ssh/id_ed25519"
    assert host.known_hosts_files == ["/var/lib/fastapi-fleet-lab/ssh/known_hosts"]


def test_production_inventory_through_its_vault(vault_file):
    hosts = {h.name: h for h in production(vault_file)}
    assert len(hosts) == 8
    assert hosts["mon1.example.internal"].groups == ("monitoring",)
    lb1 = hosts["lb1.example.internal"]
    assert lb1.groups == ("loadbalancers",)
    assert (lb1.address, lb1.private_address) == ("203.0.113.10", "10.0.1.10")
    assert lb1.user == "admin" and lb1.become
    assert lb1.known_hosts_files == []  # only the user's ~/.ssh/known_hosts
    app1 = hosts["app1.example.internal"]
    assert app1.address == app1.private_address == "10.0.2.21"
    # The app is asked where it is bound (its private address), from the host itself.
    assert app_url(app1, "/ready") == "http://10.0.2.21:8000/ready"
    assert lb1.variables["vault_db_password"] == "example-db-password-change-me"


def test_patterns_are_ansible_patterns(vault_file):
    assert [h.name for h in production(vault_file, "app:!app3*")] == ["app1.example.internal", "app2.example.internal"]
    assert [h.name for h in production(vault_file, "lb1*,db1*")] == ["db1.example.internal", "lb1.example.internal"]


def test_nested_groups_are_resolved():
    document = {
        "_meta": {"hostvars": {"a": {}, "b": {"x": 1}}},
        "all": {"children": ["ungrouped", "web"]},
        "web": {"children": ["app", "loadbalancers"]},
        "app": {"hosts": ["a"]},
        "loadbalancers": {"hosts": ["b"]},
    }
    hosts = {h.name: h for h in parse_inventory(document)}
    assert hosts["a"].groups == ("app", "web")
    assert hosts["b"].groups == ("loadbalancers", "web")
    assert hosts["b"].variables == {"x": 1}


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ("-o UserKnownHostsFile=/a -o StrictHostKeyChecking=yes", {"userknownhostsfile": ["/a"]}),
        ("-oUserKnownHostsFile='/a /b'", {"userknownhostsfile": ["/a /b"]}),
        ("-o 'UserKnownHostsFile /c' -C", {"userknownhostsfile": ["/c"]}),
        ("", {}),
    ],
)
def test_ssh_options(args, expected):
    options = parse_ssh_options(args)
    assert {k: v for k, v in options.items() if k == "userknownhostsfile"} == expected


def test_unit_names_from_the_roles_and_the_inventory(write_inventory):
    path = write_inventory({"app": {"a1": {"ansible_host": "10.0.0.5", "app_name": "shop", "postgresql_cluster": "x"}}})
    (host,) = load_hosts(resolve_source(str(path), None))
    by_name = {s.name: s for s in SERVICES}
    assert unit_name(host, by_name["app"]) == "shop.service"
    assert setting(host, "app", "app_root") == "/opt/shop"  # the role's `/opt/{{ app_name }}`
    assert unit_name(host, by_name["postgresql"]) == "postgresql@*-x.service"  # never the umbrella unit
    assert unit_name(host, by_name["redis"]) == "redis-server.service"


def test_a_template_fleet_cannot_evaluate_is_an_error(write_inventory):
    path = write_inventory({"app": {"a1": {"ansible_host": "10.0.0.5", "app_root": "{{ base | default('/x') }}"}}})
    (host,) = load_hosts(resolve_source(str(path), None))
    with pytest.raises(FleetError, match="app_root is a template"):
        setting(host, "app", "app_root")


def test_fleet_address_must_be_an_ip(write_inventory):
    path = write_inventory({"app": {"a1": {"ansible_host": "10.0.0.5", "fleet_address": "db.internal"}}})
    (host,) = load_hosts(resolve_source(str(path), None))
    with pytest.raises(FleetError, match=r"fleet_address 'db\.internal' is not an IP address"):
        _ = host.private_address
