"""Host networking for the lab: one bridge, a namespace and veth pair per machine, NAT out."""

from __future__ import annotations

import hashlib
import ipaddress
import json
import shlex
from pathlib import Path

from fleet.lab.config import LabConfig
from fleet.lab.system import run, succeeds

RULE_TAG = "fastapi-fleet-lab"
VETH_PREFIX = "vfl"
IP_FORWARD = Path("/proc/sys/net/ipv4/ip_forward")


def veth_name(machine: str) -> str:
    """Host-side veth name: short (IFNAMSIZ is 16) and stable for a machine name."""
    return VETH_PREFIX + hashlib.sha1(machine.encode()).hexdigest()[:10]  # noqa: S324 - a name, not security


def link_exists(name: str) -> bool:
    return succeeds(["ip", "link", "show", "dev", name])


def uplink_mtu() -> int:
    """MTU of the default route's device, so lab packets are never larger than the way out."""
    routes = json.loads(run(["ip", "-j", "route", "show", "default"]) or "[]")
    if not routes:
        return 1500
    links = json.loads(run(["ip", "-j", "link", "show", "dev", routes[0]["dev"]]))
    return int(links[0].get("mtu", 1500))


def _nat_rules(cfg: LabConfig) -> list[tuple[str, list[str]]]:
    """(table, rule) pairs the lab needs: masquerade out, forward in both directions."""
    tag = ["-m", "comment", "--comment", RULE_TAG]
    subnet = str(cfg.subnet)
    return [
        ("nat", ["POSTROUTING", "-s", subnet, "!", "-o", cfg.bridge, "-j", "MASQUERADE", *tag]),
        ("filter", ["FORWARD", "-i", cfg.bridge, "-j", "ACCEPT", *tag]),
        (
            "filter",
            ["FORWARD", "-o", cfg.bridge, "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT", *tag],
        ),
    ]


def ensure_network(cfg: LabConfig) -> str | None:
    """Create the bridge, NAT rules and IP forwarding; return ip_forward's previous value if set now."""
    gateway = f"{cfg.gateway}/{cfg.subnet.prefixlen}"
    if not link_exists(cfg.bridge):
        run(["ip", "link", "add", cfg.bridge, "type", "bridge"])
        run(["ip", "link", "set", cfg.bridge, "mtu", str(uplink_mtu())])
    addresses = json.loads(run(["ip", "-j", "-4", "addr", "show", "dev", cfg.bridge]))
    present = {f"{a['local']}/{a['prefixlen']}" for link in addresses for a in link.get("addr_info", [])}
    if gateway not in present:
        run(["ip", "addr", "add", gateway, "dev", cfg.bridge])
    run(["ip", "link", "set", cfg.bridge, "up"])
    for table, rule in _nat_rules(cfg):
        if not succeeds(["iptables", "-t", table, "-C", *rule]):
            chain, *spec = rule
            run(["iptables", "-t", table, "-I", chain, "1", *spec])
    before = IP_FORWARD.read_text().strip()
    if before != "1":
        IP_FORWARD.write_text("1\n")
        return before
    return None


def tagged_rules() -> list[tuple[str, list[str]]]:
    """Every iptables rule carrying the lab's comment, whatever subnet made it."""
    found: list[tuple[str, list[str]]] = []
    for table in ("nat", "filter"):
        for line in run(["iptables", "-t", table, "-S"], check=False).splitlines():
            if line.startswith("-A ") and RULE_TAG in line:
                found.append((table, shlex.split(line[3:])))
    return found


def teardown_network(cfg: LabConfig, ip_forward_before: str | None) -> None:
    """Remove the lab's NAT rules and bridge and restore IP forwarding as it was."""
    for table, rule in tagged_rules():
        run(["iptables", "-t", table, "-D", *rule], check=False)
    if link_exists(cfg.bridge):
        run(["ip", "link", "del", cfg.bridge])
    if ip_forward_before is not None:
        IP_FORWARD.write_text(ip_forward_before + "\n")


def netns_names() -> set[str]:
    """Names of the network namespaces registered under /run/netns."""
    out = run(["ip", "-j", "netns", "list"], check=False).strip()
    return {entry["name"] for entry in json.loads(out)} if out else set()


def lab_veths() -> list[str]:
    """Host-side veth links that the lab created (by prefix)."""
    links = json.loads(run(["ip", "-j", "link", "show"]) or "[]")
    return [link["ifname"] for link in links if link["ifname"].startswith(VETH_PREFIX)]


def addresses_in_use(cfg: LabConfig) -> set[ipaddress.IPv4Address]:
    """Addresses the host already has in the lab subnet (its own, on any interface)."""
    used: set[ipaddress.IPv4Address] = set()
    for link in json.loads(run(["ip", "-j", "-4", "addr", "show"]) or "[]"):
        for info in link.get("addr_info", []):
            address = ipaddress.IPv4Address(info["local"])
            if address in cfg.subnet:
                used.add(address)
    return used


def create_machine_netns(cfg: LabConfig, name: str, veth: str, address: ipaddress.IPv4Address) -> None:
    """A namespace with the peer end of a veth pair as eth0, addressed and routed via the bridge."""
    mtu = Path(f"/sys/class/net/{cfg.bridge}/mtu").read_text().strip()
    run(["ip", "netns", "add", name])
    run(["ip", "link", "add", veth, "mtu", mtu, "type", "veth", "peer", "name", "eth0", "mtu", mtu, "netns", name])
    run(["ip", "link", "set", veth, "master", cfg.bridge, "up"])
    ns = ["ip", "-n", name]
    run([*ns, "addr", "add", f"{address}/{cfg.subnet.prefixlen}", "dev", "eth0"])
    run([*ns, "link", "set", "lo", "up"])
    run([*ns, "link", "set", "eth0", "up"])
    run([*ns, "route", "add", "default", "via", str(cfg.gateway)])


def delete_machine_netns(name: str, veth: str) -> None:
    """Remove a machine's veth pair and namespace; missing pieces are fine."""
    if link_exists(veth):
        run(["ip", "link", "del", veth], check=False)
    if name in netns_names():
        run(["ip", "netns", "del", name], check=False)
