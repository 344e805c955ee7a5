#!/usr/bin/env bash
# Set everything up, then run the main job on its embedded default: the scratch CNN
# trained on a small generated data set, results in ./outputs/scratch-<hash of its config>.
#   bash scripts/demo.sh [HYDRA OVERRIDES...]
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
.venv/bin/inat train "$@"
