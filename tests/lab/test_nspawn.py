"""The nspawn command line: a machine's own network namespace, and only the capability its firewall needs."""

from fleet.lab import machines
from fleet.lab.config import LabConfig


def test_machine_boots_in_its_own_network_namespace_with_net_admin_only():
    args = machines.nspawn_command(machines.MachinePaths(LabConfig(), "web1"), "web1")
    assert "--network-namespace-path=/run/netns/web1" in args
    # CAP_NET_ADMIN (nftables, its own interfaces), added to nspawn's default set, and nothing else.
    assert [arg for arg in args if arg.startswith(("--capability", "--drop-capability"))] == [
        "--capability=CAP_NET_ADMIN"
    ]
    assert not any(arg.startswith(("--private-users", "--network-veth", "--network-bridge")) for arg in args)
