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
# The lab's Debian images (debootstrap, once per machine; the tests and both scenarios boot
# from them) build in the background while the linters run; pytest waits for them.
mkdir -p .cache
image_jobs=()
for distro in bookworm trixie; do
    fleet lab image "$distro" >".cache/lab-image-$distro.log" 2>&1 &
    image_jobs+=("$distro:$!")
done
lab_images() {
    local job failed=0
    for job in "${image_jobs[@]}"; do
        if ! wait "${job#*:}"; then
            echo "test: building the ${job%%:*} image failed:" >&2
            cat ".cache/lab-image-${job%%:*}.log" >&2
            failed=1
        fi
    done
    return $failed
}
step ruff ruff check .
step ruff-format ruff format --check .
step yamllint yamllint -s .
step ansible-lint ansible-lint
step lab-images lab_images
step pytest pytest
step molecule molecule test --all
echo "=== timings"
printf '%s\n' "${timings[@]}"
