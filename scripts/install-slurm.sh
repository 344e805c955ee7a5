#!/usr/bin/env bash
# Install what tests/slurm needs: Debian's Slurm packages (for a real single-node cluster,
# see scripts/slurm-cluster.sh) and shellcheck. Needs root and apt-get; without them it says
# so and the Slurm tests skip (in CI, CI=true, they fail instead).
#   bash scripts/install-slurm.sh
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [[ $(id -u) != 0 ]] || ! command -v apt-get >/dev/null; then
    echo "install-slurm: not root or no apt-get: Slurm and shellcheck are not installed," \
        "so the Slurm tests will skip" >&2
    exit 0
fi
bash scripts/slurm-cluster.sh install shellcheck
