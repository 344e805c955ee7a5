#!/usr/bin/env bash
# A Debian 12 (bookworm) base image made here with debootstrap, for building the Dockerfile
# where no container registry can be reached (CI, air-gapped build machines):
#   bash scripts/container-base.sh [IMAGE]       # default IMAGE: localhost/debian:bookworm
#   bash scripts/build-image.sh --engine podman --base localhost/debian:bookworm ...
# Needs root, debootstrap and podman (scripts/install-container-tools.sh). The root file system
# is kept as a tarball in INAT_CONTAINER_CACHE (default: ~/.cache/inat-container), so a later
# step on the same machine only imports it. MIRROR: the Debian mirror (default: the one this
# machine's apt uses for bookworm, else deb.debian.org).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
IMAGE=${1:-localhost/debian:bookworm}
CACHE=${INAT_CONTAINER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/inat-container}
TARBALL=$CACHE/debian-bookworm-minbase.tar
export CONTAINERS_CONF=${CONTAINERS_CONF:-$PWD/scripts/containers.conf}

if podman image exists "$IMAGE"; then
    exit 0
fi
if [[ ! -s $TARBALL ]]; then
    # $(REPO_URI) is apt's own template syntax, expanded by apt-get, not by the shell.
    # shellcheck disable=SC2016
    mirror=${MIRROR:-$(apt-get indextargets --format '$(REPO_URI) $(RELEASE)' 2>/dev/null \
        | awk '$2 == "bookworm" { print $1; exit }')}
    mirror=${mirror:-http://deb.debian.org/debian/}
    mkdir -p "$CACHE"
    rootfs=$(mktemp -d)
    trap 'rm -rf "$rootfs" "$TARBALL.part"' EXIT
    echo "container-base.sh: debootstrap bookworm from $mirror"
    debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >/dev/null
    tar -C "$rootfs" -cf "$TARBALL.part" .
    mv "$TARBALL.part" "$TARBALL"
fi
podman import --quiet --change 'CMD ["/bin/bash"]' "$TARBALL" "$IMAGE" >/dev/null
echo "container-base.sh: $IMAGE from $TARBALL"
