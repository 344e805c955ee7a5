#!/usr/bin/env bash
# Install podman (builds and runs the Dockerfile without a Docker engine) and debootstrap
# (a Debian base image where no registry answers) from Debian's packages, for the container
# tests and CI. hadolint comes from pyproject's `test` extra.
#   bash scripts/install-container-tools.sh
# Needs root and apt-get. In CI (CI=true) it fails without them; elsewhere it says why it
# skipped, and the container tests skip too.
set -euo pipefail

PACKAGES=(podman runc debootstrap)

installed=$(dpkg-query --show --showformat='${db:Status-Status}\n' "${PACKAGES[@]}" 2>/dev/null \
    | grep -cx installed || true)
if ((installed == ${#PACKAGES[@]})); then
    exit 0
fi

if [[ $EUID -ne 0 ]] || ! command -v apt-get >/dev/null; then
    reason="installing ${PACKAGES[*]} needs root and apt-get"
    if [[ ${CI:-} == true ]]; then
        echo "install-container-tools.sh: $reason" >&2
        exit 1
    fi
    echo "install-container-tools.sh: skipped: $reason; the container tests will skip" >&2
    exit 0
fi
echo "install-container-tools.sh: installing ${PACKAGES[*]}"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}" \
    >/dev/null
podman --version
