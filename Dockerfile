# The inat image: the same image runs Slurm tasks (Apptainer, Pyxis), Kubernetes pods and
# `docker run` on a workstation. Build it with its labels and version stamps set:
#   bash scripts/build-image.sh --tag registry.example.com/ml/inat:0.1.0
#   docker run --rm --gpus all registry.example.com/ml/inat:0.1.0 inat smoke --require-gpu
#
# CUDA comes with PyTorch's wheels; the CUDA base adds what GPU runtimes look for (NVIDIA_*
# variables, CUDA forward compatibility). CUDA chooses both: the base image
# nvidia/cuda:CUDA-base-ubuntu24.04 and PyTorch's wheels for CUDA's major.minor (cuXY). The
# host's NVIDIA driver must support that CUDA (NVIDIA's CUDA release notes and its minor
# version compatibility; docs/container.md):
#   CUDA=13.0.2 (default)  PyPI's wheels, the cu130 build: driver >= 580
#   CUDA=12.6.3            torch==2.14.1+cu126 from https://download.pytorch.org/whl/cu126:
#                          driver >= 525.60.13 (e.g. 535, 550), >= 560.35.05 for all of 12.6
# PyTorch 2.14 publishes cu126, cu130 and cu132 wheels (no CUDA 12.8 build since 2.12):
#   bash scripts/build-image.sh --cuda 12.6.3 --tag registry.example.com/ml/inat:0.1.0-cu126
# BASE_IMAGE may be any Debian or Ubuntu image whose apt has Python >= 3.11 instead, e.g.
# debian:bookworm-slim; CUDA then chooses the wheels only.
ARG CUDA=13.0.2
ARG BASE_IMAGE=nvidia/cuda:${CUDA}-base-ubuntu24.04
FROM ${BASE_IMAGE}

# Python, tini (PID 1: passes SIGTERM on to inat, reaps orphans) and the non-root user
# inat (uid 1000, as the Helm chart runs it); Ubuntu images ship a user with that uid.
# hadolint ignore=DL3008
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        ca-certificates python3 python3-venv tini \
    && rm -rf /var/lib/apt/lists/* \
    && if id -u ubuntu >/dev/null 2>&1; then userdel --remove ubuntu; fi \
    && groupadd --gid 1000 inat \
    && useradd --uid 1000 --gid 1000 --create-home --home-dir /home/inat --shell /bin/bash inat

# Layers from the least to the most often changed: PyTorch, inat's dependencies, inat.
# A code change rebuilds only the last one.
ENV VIRTUAL_ENV=/opt/inat \
    PATH=/opt/inat/bin:$PATH
# pip settings of the build only, never kept in the image: a pip.conf made available to the
# build, e.g. one naming a mirror or a wheelhouse (scripts/build-image.sh --wheelhouse).
ARG PIP_CONFIG_FILE
# PyTorch for CUDA's major.minor (cuXY): PyPI's wheels are the cu130 build; another CUDA's
# come from PyTorch's index, pinned with their local label (torch==2.14.1+cu126).
ARG CUDA
ARG TORCH_VERSION=2.14.1
ARG TORCHVISION_VERSION=0.29.1
RUN python3 -m venv /opt/inat \
    && minor="${CUDA#*.}" && variant="cu${CUDA%%.*}${minor%%.*}" \
    && if [ "${variant}" = cu130 ]; then \
        pip install --no-cache-dir --disable-pip-version-check \
            "torch==${TORCH_VERSION}" "torchvision==${TORCHVISION_VERSION}"; \
    else \
        pip install --no-cache-dir --disable-pip-version-check \
            --extra-index-url "https://download.pytorch.org/whl/${variant}" \
            "torch==${TORCH_VERSION}+${variant}" "torchvision==${TORCHVISION_VERSION}+${variant}"; \
    fi

# inat's dependencies at the versions of requirements.lock (those the tests passed with). The
# lock holds the CUDA packages (cuda-*, nvidia-*) of PyPI's cu130 torch: another CUDA's torch
# brought its own, so their pins go.
COPY pyproject.toml requirements.lock /opt/inat-src/
RUN python3 -c "import tomllib; \
deps = tomllib.load(open('/opt/inat-src/pyproject.toml', 'rb'))['project']['dependencies']; \
open('/opt/inat-src/requirements.txt', 'w').write('\n'.join(deps))" \
    && minor="${CUDA#*.}" && if [ "cu${CUDA%%.*}${minor%%.*}" != cu130 ]; then \
        sed -i -E '/^(cuda|nvidia)-/d' /opt/inat-src/requirements.lock; \
    fi \
    && pip install --no-cache-dir --disable-pip-version-check \
        -c /opt/inat-src/requirements.lock -r /opt/inat-src/requirements.txt

COPY README.md /opt/inat-src/
COPY hydra_plugins /opt/inat-src/hydra_plugins
COPY inat /opt/inat-src/inat
# What the image is, for the labels and stamps below. Declared before this RUN, whose cache
# key holds their values, so that a build at a new commit never reuses the layers of an old
# one: podman (buildah) reuses a cached LABEL or ENV layer whose ARG values differ.
ARG BASE_IMAGE
ARG VERSION=""
ARG REVISION=""
ARG INAT_IMAGE=""
RUN pip install --no-cache-dir --disable-pip-version-check --no-deps /opt/inat-src \
    && rm -rf /opt/inat-src \
    && inat --help >/dev/null

# OCI labels, and the same facts for result.json (inat/train/versions.py).
LABEL org.opencontainers.image.title="inat" \
      org.opencontainers.image.description="Train image classifiers on iNaturalist-12K as batch jobs" \
      org.opencontainers.image.source="https://github.com/inat-project/inat" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.base.name="${BASE_IMAGE}"
ENV INAT_IMAGE=${INAT_IMAGE} \
    INAT_GIT_COMMIT=${REVISION}

# Everything that writes (caches of pip, torch, matplotlib, wandb; Hydra's logs/ in the
# working directory) goes below HOME: setting HOME moves all of it, e.g. to a writable
# volume under a read-only root file system (the Helm chart sets HOME=/tmp).
ENV HOME=/home/inat \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility \
    TINI_SUBREAPER=1
USER 1000:1000
WORKDIR /home/inat
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["inat", "--help"]
