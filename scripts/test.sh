#!/usr/bin/env bash
# Set everything up and run every check: ruff, then the whole test suite.
#   bash scripts/test.sh [PYTEST ARGS...]
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
bash scripts/install-slurm.sh
bash scripts/install-helm.sh
bash scripts/install-container-tools.sh
bash scripts/install-chromium.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/pytest "$@"
