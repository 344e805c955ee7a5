#!/usr/bin/env bash
# Create .venv (once) and install inat with its test tools into it, at the locked versions.
#   bash scripts/setup.sh            # then: source .venv/bin/activate
# PYTHON picks the interpreter (default: python3, which must be 3.10 or newer).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON=${PYTHON:-python3}

if [[ ! -x .venv/bin/python ]]; then
    "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
# The versions of requirements.lock (bash scripts/lock.sh refreshes it), inat itself editable.
.venv/bin/python -m pip install --quiet -c requirements.lock -e ".[test]"
