#!/usr/bin/env bash
# Install Chromium from Debian's packages: the headless browser the dashboard test
# (tests/results/test_dashboard.py) opens `inat results SWEEP --dashboard` in.
#   bash scripts/install-chromium.sh
# Needs root and apt-get. In CI (CI=true) it fails without them; elsewhere it says why it
# skipped, and the dashboard's browser test skips too.
set -euo pipefail

PACKAGES=(chromium)

installed=$(dpkg-query --show --showformat='${db:Status-Status}\n' "${PACKAGES[@]}" 2>/dev/null \
    | grep -cx installed || true)
if ((installed == ${#PACKAGES[@]})); then
    exit 0
fi

if [[ $EUID -ne 0 ]] || ! command -v apt-get >/dev/null; then
    reason="installing ${PACKAGES[*]} needs root and apt-get"
    if [[ ${CI:-} == true ]]; then
        echo "install-chromium.sh: $reason" >&2
        exit 1
    fi
    echo "install-chromium.sh: skipped: $reason; the dashboard's browser test will skip" >&2
    exit 0
fi
echo "install-chromium.sh: installing ${PACKAGES[*]}"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" \
    >/dev/null
chromium --version
