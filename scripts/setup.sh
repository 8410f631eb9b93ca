#!/usr/bin/env bash
# Install what the control node needs, idempotently: Debian packages and the pinned
# virtualenv (.venv) with Ansible, molecule, the linters, the lab and the app.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
    echo "setup: run as root (the lab creates namespaces, mounts and NAT rules)" >&2
    exit 1
fi

packages=(
    python3 python3-venv python3-dev gcc git curl ca-certificates openssh-client
    iproute2 iptables systemd-container debootstrap   # the lab
    apt-cacher-ng                                     # the lab machines' shared package cache
    nftables                                          # nft -c on rendered rulesets; the host's ruleset checked unchanged
    postgresql redis-server wrk                       # app tests and benchmarks (servers started by the tests)
    prometheus prometheus-alertmanager                # promtool and amtool: alert rules unit-tested, configs checked
)
missing=()
for pkg in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    # Package installs must not start PostgreSQL or Redis here: the tests start their own.
    policy=/usr/sbin/policy-rc.d
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod 755 "$policy"
        trap 'rm -f "$policy"' EXIT
    fi
    apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

stamp=$(cat constraints.txt pyproject.toml app/pyproject.toml | sha256sum | cut -d' ' -f1)
if [ ! -x .venv/bin/python ] || [ "$(cat .venv/.setup-stamp 2>/dev/null)" != "$stamp" ]; then
    echo "setup: building .venv from constraints.txt"
    rm -rf .venv
    python3 -m venv .venv
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -c constraints.txt -e . -e ./app
    echo "$stamp" > .venv/.setup-stamp
fi
echo "setup: ready (.venv: $(.venv/bin/ansible --version | head -1))"
