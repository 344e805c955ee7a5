#!/usr/bin/env bash
# Build the inat image from the Dockerfile, with its OCI labels and version stamps set.
#   bash scripts/build-image.sh [OPTIONS] [-- BUILD-ARGS...]
# Options:
#   --tag TAG          the image name (default: inat:VERSION, VERSION from pyproject.toml)
#   --engine ENGINE    docker or podman (default: $CONTAINER_ENGINE, else docker)
#   --base IMAGE       the BASE_IMAGE build argument (default: the Dockerfile's CUDA base)
#   --cuda VERSION     the CUDA build argument: the CUDA base image and PyTorch's wheels built
#                      for it (default: the Dockerfile's 13.0.2, which needs NVIDIA driver
#                      >= 580; 12.6.3 runs on older drivers: see docs/container.md)
#   --wheelhouse DIR   install every Python package from wheels gathered into DIR first, by
#                      this machine's pip (PYTHON, default .venv/bin/python, whose version must
#                      be the image's): for build machines without a package index, or whose
#                      pip reaches its packages through local settings (podman only)
# BUILD-ARGS go to `ENGINE build` as they are, e.g. -- --build-arg TORCH_VERSION=2.14.1
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
VERSION=$(sed -n 's/^version = "\(.*\)"$/\1/p' pyproject.toml | head -n 1)
TAG=inat:$VERSION
ENGINE=${CONTAINER_ENGINE:-docker}
BASE=""
CUDA=""
WHEELHOUSE=""
PYTHON=${PYTHON:-.venv/bin/python}

usage() {
    # The header comment above, without its leading '#'.
    awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "${BASH_SOURCE[0]}" >&2
    exit "$1"
}

while (($#)); do
    case $1 in
        --tag) TAG=${2:?--tag needs a value}; shift 2 ;;
        --engine) ENGINE=${2:?--engine needs a value}; shift 2 ;;
        --base) BASE=${2:?--base needs a value}; shift 2 ;;
        --cuda) CUDA=${2:?--cuda needs a value}; shift 2 ;;
        --wheelhouse) WHEELHOUSE=${2:?--wheelhouse needs a value}; shift 2 ;;
        -h | --help) usage 0 ;;
        --) shift; break ;;
        *) echo "build-image.sh: unknown option $1" >&2; usage 64 ;;
    esac
done

REVISION=$(git rev-parse HEAD 2>/dev/null || true)
if [[ -n $REVISION && -n $(git status --porcelain 2>/dev/null) ]]; then
    REVISION+=-dirty  # built from uncommitted changes
fi
args=(
    --file Dockerfile --tag "$TAG"
    --build-arg "VERSION=$VERSION" --build-arg "REVISION=$REVISION" --build-arg "INAT_IMAGE=$TAG"
)
if [[ -n $BASE ]]; then
    args+=(--build-arg "BASE_IMAGE=$BASE")
fi
if [[ -n $CUDA ]]; then
    args+=(--build-arg "CUDA=$CUDA")
fi

if [[ -n $WHEELHOUSE ]]; then
    if [[ $ENGINE != podman ]]; then
        echo "build-image.sh: --wheelhouse needs --engine podman (docker build mounts no volumes)" >&2
        exit 64
    fi
    # What the Dockerfile installs: PyTorch at its pinned versions, inat's dependencies (at
    # the versions of requirements.lock) and what building inat needs. As in the Dockerfile,
    # PyTorch for CUDA's major.minor (cuXY): PyPI's wheels are the cu130 build; another CUDA's
    # come from PyTorch's index as torch==VERSION+cuXY, without the lock's CUDA packages.
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    variant=cu130
    if [[ -n $CUDA ]]; then
        minor=${CUDA#*.}
        variant=cu${CUDA%%.*}${minor%%.*}
    fi
    constraints=requirements.lock label="" pytorch_index=()
    if [[ $variant != cu130 ]]; then
        label=+$variant
        pytorch_index=(--extra-index-url "https://download.pytorch.org/whl/$variant")
        constraints=$work/constraints.txt
        grep -v -E '^(cuda|nvidia)-' requirements.lock >"$constraints"
    fi
    {
        sed -n "s/^ARG TORCH_VERSION=\(.*\)/torch==\1$label/p
                s/^ARG TORCHVISION_VERSION=\(.*\)/torchvision==\1$label/p" Dockerfile
        "$PYTHON" -c 'import tomllib; p = tomllib.load(open("pyproject.toml", "rb"));
print("\n".join(p["project"]["dependencies"] + p["build-system"]["requires"]))'
    } >"$work/requirements.txt"
    mkdir -p "$WHEELHOUSE"
    WHEELHOUSE=$(cd "$WHEELHOUSE" && pwd)
    echo "build-image.sh: gathering wheels for $variant into $WHEELHOUSE"
    "$PYTHON" -m pip wheel --quiet --disable-pip-version-check --wheel-dir "$WHEELHOUSE" \
        "${pytorch_index[@]}" --constraint "$constraints" \
        --requirement "$work/requirements.txt"
    printf '[global]\nno-index = true\nfind-links = /run/wheelhouse\n' >"$WHEELHOUSE/pip.conf"
    args+=(
        --volume "$WHEELHOUSE:/run/wheelhouse:ro"
        --build-arg PIP_CONFIG_FILE=/run/wheelhouse/pip.conf
    )
fi

if [[ $ENGINE == podman ]]; then
    export CONTAINERS_CONF=${CONTAINERS_CONF:-$PWD/scripts/containers.conf}
fi
echo "build-image.sh: building $TAG (version $VERSION, revision ${REVISION:-unknown})"
"$ENGINE" build "${args[@]}" "$@" .
