#!/usr/bin/env bash
# Set everything up and run every check: ruff, then the whole test suite in two processes.
#   bash scripts/test.sh [PYTEST ARGS...]
#   bash scripts/test.sh --soak      # only the long real-time variants (minutes each)
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
bash scripts/install-slurm.sh
bash scripts/install-helm.sh
bash scripts/install-container-tools.sh
bash scripts/install-chromium.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
marker=()
if [[ ${1:-} == --soak ]]; then
    shift
    marker=(-m soak)
fi
# Two processes on two CPUs: while one test waits (a server, Slurm, a subprocess's start),
# the other computes. The slowest tests are listed at the end.
.venv/bin/pytest -n 2 --dist loadgroup --durations=25 "${marker[@]}" "$@"
