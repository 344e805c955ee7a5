#!/usr/bin/env bash
# Refresh requirements.lock: the exact versions of inat's dependencies and test tools that
# scripts/setup.sh, CI and the Dockerfile install. pyproject.toml keeps the ranges (for
# people who install inat as a library); this pins the newest versions inside them.
#   bash scripts/lock.sh       # then run the tests, and commit pyproject.toml with the lock
# PYTHON picks the interpreter the lock is made for (default: python3).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON=${PYTHON:-python3}
tools=$(mktemp -d)
trap 'rm -rf "$tools"' EXIT

"$PYTHON" -m venv "$tools"
"$tools/bin/python" -m pip install --quiet "pip-tools>=7.4,<8"
# PyTorch at the versions the image installs first (the Dockerfile's TORCH_VERSION and
# TORCHVISION_VERSION), so that the lock and the image agree.
sed -n 's/^ARG TORCH_VERSION=/torch==/p; s/^ARG TORCHVISION_VERSION=/torchvision==/p' \
    Dockerfile >"$tools/torch.txt"
CUSTOM_COMPILE_COMMAND="bash scripts/lock.sh" "$tools/bin/pip-compile" --quiet --upgrade \
    --strip-extras --no-emit-index-url --no-emit-find-links --extra test \
    --constraint "$tools/torch.txt" --output-file requirements.lock pyproject.toml
# Name the PyTorch constraint by where it comes from, not by its temporary file.
sed -i "s#-c $tools/torch.txt#-c Dockerfile (TORCH_VERSION, TORCHVISION_VERSION)#" requirements.lock
