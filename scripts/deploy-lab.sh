#!/usr/bin/env bash
# Set everything up, boot the lab machines of inventories/lab and deploy the whole stack to them.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
fleet lab up --inventory inventories/lab
ansible-playbook playbooks/site.yml "$@"
# Every service up, then end-to-end checks from the control node through every load balancer.
fleet status
fleet smoke
echo "deploy-lab: the stack answers; try: curl -k https://$(ansible-inventory --host fleet1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["ansible_host"])')/health"
