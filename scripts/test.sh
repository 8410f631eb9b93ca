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
step ruff ruff check .
step ruff-format ruff format --check .
step yamllint yamllint -s .
step ansible-lint ansible-lint
step pytest pytest
step molecule molecule test --all
echo "=== timings"
printf '%s\n' "${timings[@]}"
