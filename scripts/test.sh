#!/usr/bin/env bash
# The whole test suite: lint, pytest (lab, app on real PostgreSQL/Redis, docs), and
# molecule on real lab machines. Exits non-zero on the first failing step.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
export ANSIBLE_FORCE_COLOR=0 PY_COLORS=0

timings=()
step() {
    local name=$1
    shift
    echo "=== $name: $*"
    local start=$SECONDS
    "$@"
    timings+=("$(printf '%-14s %5ss' "$name" $((SECONDS - start)))")
}

# Each molecule scenario runs its test_sequence (molecule.yml) one action at a time:
# destroy, syntax, create and check (site.yml in --check mode on the fresh machines), converge,
# idempotence, check (converged), verify, destroy. The scenarios' machines are separate, and a
# converge waits on SSH round trips far more than it uses the CPUs (a no-change site.yml run on
# three lab hosts: 117 s of wall time, 55 s of Ansible's CPU), so the fleet's actions run while
# the default scenario's do. Two orders hold: the fleet's site.yml runs start once the default
# scenario has converged (the first converge on this machine makes the lab's CA and the app's
# wheels, which two first runs at once would race on, and a check run would read half-made),
# and the fleet's verifiers that measure times (marked `alone`: p99s, a deploy's gaps, an
# alert's delay) run once the default scenario is done; its other verifiers run beside it.
marks=$(mktemp -d)
trap 'rm -rf "$marks"' EXIT

actions() {  # SCENARIO ACTION...: stops at the first failing action and destroys the machines
    local scenario=$1 action start
    shift
    for action in "$@"; do
        echo "=== molecule $action -s $scenario"
        start=$SECONDS
        if ! molecule "$action" -s "$scenario"; then
            echo "=== molecule $action -s $scenario failed after $((SECONDS - start))s"
            molecule destroy -s "$scenario" || true
            return 1
        fi
        printf '%-8s %-12s %5ss\n' "$scenario" "$action" $((SECONDS - start)) >> "$marks/times"
    done
}

wait_for() {  # FILE...: until one of them exists
    local file
    while true; do
        for file in "$@"; do
            [ -e "$file" ] && return 0
        done
        sleep 2
    done
}

default_scenario() {
    actions default destroy syntax check converge || return 1
    touch "$marks/default-converged"
    actions default idempotence check verify destroy
}

fleet_scenario() {
    actions fleet destroy syntax create || return 1
    wait_for "$marks/default-converged" "$marks/default-done"
    actions fleet check converge idempotence check || return 1
    PYTEST_ADDOPTS='-m "not alone"' actions fleet verify || return 1
    wait_for "$marks/default-done"
    PYTEST_ADDOPTS='-m alone' actions fleet verify destroy
}

molecule_scenarios() {  # both scenarios, each line prefixed with its scenario (both write at once)
    local default_rc fleet_rc
    {
        default_scenario && echo 0 > "$marks/default-rc" || echo $? > "$marks/default-rc"
        touch "$marks/default-done"
    } 2>&1 | sed -u 's/^/[default] /' &
    {
        fleet_scenario && echo 0 > "$marks/fleet-rc" || echo $? > "$marks/fleet-rc"
    } 2>&1 | sed -u 's/^/[fleet] /'
    wait
    default_rc=$(cat "$marks/default-rc") fleet_rc=$(cat "$marks/fleet-rc")
    echo "=== molecule actions"
    cat "$marks/times"
    echo "=== molecule: default exited $default_rc, fleet exited $fleet_rc"
    [ "$default_rc" -eq 0 ] && [ "$fleet_rc" -eq 0 ]
}

step ruff ruff check .
step ruff-format ruff format --check .
step yamllint yamllint -s .
step ansible-lint ansible-lint
step pytest pytest
step molecule molecule_scenarios
echo "=== timings"
printf '%s\n' "${timings[@]}"
