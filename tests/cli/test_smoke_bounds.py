"""fleet smoke stays bounded: a rate limit too generous to probe (fleet bench's lab) is skipped, not flooded."""

import argparse

from fleet.ops.inventory import Host
from fleet.ops.smoke import MAX_RATE_PROBE, SKIP, LoadBalancer


def balancer(burst: int) -> LoadBalancer:
    host = Host("lb1", ("loadbalancers",), {"ansible_host": "10.231.0.140", "nginx_rate_limit_burst": burst})
    return LoadBalancer(host, argparse.Namespace(ca_file=None, server_name=None), [])


def test_a_burst_beyond_the_probe_is_skipped_without_a_request():
    check = balancer(100_000).rate_limit(client=None, path="/api/v1/items/1")  # type: ignore[arg-type]
    assert check.result == SKIP
    assert "200040 requests" in check.detail and str(MAX_RATE_PROBE) in check.detail


def test_the_default_burst_is_probed():
    assert 2 * balancer(40).burst + 40 <= MAX_RATE_PROBE
