#!/usr/bin/env bash
# Install Chromium from Debian's packages: the headless browser the dashboard test
# (tests/results/test_dashboard.py) opens `inat results SWEEP --dashboard` in.
#   bash scripts/install-chromium.sh
# Needs root and apt-get. In CI (CI=true) it fails without them; elsewhere it says why it
# skipped, and the dashboard's browser test skips too.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=apt-packages.sh
source "$(dirname "${BASH_SOURCE[0]}")/apt-packages.sh"

apt_packages install-chromium.sh "the dashboard's browser test" chromium
