#!/usr/bin/env bash
# Install podman (builds and runs the Dockerfile without a Docker engine) and debootstrap
# (a Debian base image where no registry answers) from Debian's packages, for the container
# tests and CI. hadolint comes from pyproject's `test` extra.
#   bash scripts/install-container-tools.sh
# Needs root and apt-get. In CI (CI=true) it fails without them; elsewhere it says why it
# skipped, and the container tests skip too.
set -euo pipefail

# shellcheck source-path=SCRIPTDIR source=apt-packages.sh
source "$(dirname "${BASH_SOURCE[0]}")/apt-packages.sh"

apt_packages install-container-tools.sh "the container tests" podman runc debootstrap
