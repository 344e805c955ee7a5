"""`helm test RELEASE`: a Pod hook that runs `inat smoke` as a training pod of the release
would run, on the same storage, Secrets, volumes, resources, placement and security context.
(test_pod.py runs it against an S3 server.)"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from .helm import CHART, CI_VALUES, JOB_FILES, OUTPUT, one, render
from .pod import pod_spec

SMOKE = next(p for p in JOB_FILES if p.name == "smoke.yaml")
CHART_YAML = yaml.safe_load((CHART / "Chart.yaml").read_text())
# What a training pod has that `inat smoke` does not need: a point's index, inat launch's.
TRAINING_ONLY_ENV = {"JOB_COMPLETION_INDEX", "TORCH_ELASTIC_SHUTDOWN_TIMEOUT"}
SHARED_POD_FIELDS = (
    "securityContext",
    "serviceAccountName",
    "automountServiceAccountToken",
    "enableServiceLinks",
    "imagePullSecrets",
    "priorityClassName",
    "runtimeClassName",
    "schedulerName",
    "nodeSelector",
    "tolerations",
    "affinity",
    "volumes",
)
SHARED_CONTAINER_FIELDS = (
    "image",
    "imagePullPolicy",
    "workingDir",
    "resources",
    "securityContext",
    "volumeMounts",
)


def _smoke_container(manifests: list[dict]) -> dict:
    containers = pod_spec(manifests, "Pod")["containers"]
    assert len(containers) == 1
    return containers[0]


@pytest.mark.parametrize("values_file", CI_VALUES, ids=[p.name for p in CI_VALUES])
def test_the_test_pod_is_a_training_pod_that_runs_inat_smoke(values_file: Path):
    manifests = render([values_file])
    hook = one(manifests, "Pod")
    assert hook["metadata"]["annotations"]["helm.sh/hook"] == "test"
    assert hook["metadata"]["annotations"]["helm.sh/hook-delete-policy"] == ("before-hook-creation")
    assert hook["spec"]["restartPolicy"] == "Never"
    training, smoke = pod_spec(manifests), pod_spec(manifests, "Pod")
    for field in SHARED_POD_FIELDS:
        assert smoke.get(field) == training.get(field), field
    main, test = training["containers"][0], _smoke_container(manifests)
    for field in SHARED_CONTAINER_FIELDS:
        assert test.get(field) == main.get(field), field
    assert test["env"] == [e for e in main["env"] if e["name"] not in TRAINING_ONLY_ENV]

    # inat smoke checks the GPUs the pods get, with the overrides of every point: the
    # job's, then the chart's (output, cache, data source, W&B, `overrides`).
    assert test["command"] == ["inat", "smoke"]
    job_overrides = yaml.safe_load(values_file.read_text())["job"].get("overrides", [])
    points = main["args"][main["args"].index("/etc/inat/job.yaml") + 1 :]
    require_gpu = ["--require-gpu"] if main["resources"]["limits"].get("nvidia.com/gpu") else []
    assert test["args"] == [*require_gpu, *job_overrides, *points]


def test_the_test_pod_gets_the_releases_storage_and_secrets():
    manifests = render(
        [SMOKE],
        {
            "s3": {"endpoint": "http://minio.minio:9000", "region": "eu-west-1"},
            "credentials": {"existingSecret": "inat-s3", "sessionTokenKey": "token"},
            "data": {"source": "s3://inat-test/data/nature_12K.zip"},
            "overrides": ["storage.addressing_style=path", "name=$(NOT_A_VAR)"],
            "extraEnv": [{"name": "AWS_CA_BUNDLE", "value": "/certs/ca.pem"}],
        },
    )
    test = _smoke_container(manifests)
    env = {e["name"]: e for e in test["env"]}
    assert env["AWS_ENDPOINT_URL"]["value"] == "http://minio.minio:9000"
    assert env["AWS_REGION"]["value"] == "eu-west-1"
    for name, key in [
        ("AWS_ACCESS_KEY_ID", "AWS_ACCESS_KEY_ID"),
        ("AWS_SECRET_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY"),
        ("AWS_SESSION_TOKEN", "token"),
    ]:
        assert env[name]["valueFrom"]["secretKeyRef"] == {"name": "inat-s3", "key": key}
    assert env["AWS_CA_BUNDLE"]["value"] == "/certs/ca.pem"
    assert test["args"] == [
        "--require-gpu",
        "trainer.epochs=2",
        f"output={OUTPUT}",
        "data.cache_dir=/cache",
        "data.source=s3://inat-test/data/nature_12K.zip",
        "storage.addressing_style=path",
        "name=$$(NOT_A_VAR)",  # Kubernetes hands inat the override as given
    ]


def test_the_test_pod_runs_as_non_root_on_a_read_only_root_filesystem():
    manifests = render([SMOKE])
    smoke = pod_spec(manifests, "Pod")
    assert smoke["securityContext"]["runAsNonRoot"] is True
    assert smoke["securityContext"]["runAsUser"] == 1000
    assert smoke["automountServiceAccountToken"] is False
    test = _smoke_container(manifests)
    assert test["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    # What writes (HOME, temporary files, the data cache) goes to the pod's own volumes.
    volumes = {v["name"]: v for v in smoke["volumes"]}
    mounts = {m["mountPath"]: volumes[m["name"]] for m in test["volumeMounts"]}
    assert "emptyDir" in mounts["/tmp"] and "emptyDir" in mounts["/cache"]
    assert {"name": "HOME", "value": "/tmp"} in test["env"]
    assert test["workingDir"] == "/tmp"


def test_without_gpus_the_test_does_not_require_one():
    no_gpu = {"nvidia.com/gpu": None}
    manifests = render([SMOKE], {"resources": {"requests": no_gpu, "limits": no_gpu}})
    test = _smoke_container(manifests)
    assert "--require-gpu" not in test["args"]
    assert "nvidia.com/gpu" not in test["resources"]["limits"]


def test_the_test_pod_has_the_release_labels_as_its_own_component():
    manifests = render(
        [SMOKE],
        {
            "podLabels": {"team": "vision", "app.kubernetes.io/component": "not-the-charts"},
            "podAnnotations": {"sidecar.istio.io/inject": "false", "helm.sh/hook": "not-this"},
        },
        release="lr",
    )
    hook = one(manifests, "Pod")["metadata"]
    assert hook["name"] == "lr-inat-smoke"
    assert hook["labels"] == {
        "helm.sh/chart": f"inat-{CHART_YAML['version']}",
        "app.kubernetes.io/name": "inat",
        "app.kubernetes.io/instance": "lr",
        "app.kubernetes.io/version": CHART_YAML["appVersion"],
        "app.kubernetes.io/component": "smoke-test",
        "app.kubernetes.io/part-of": "inat",
        "app.kubernetes.io/managed-by": "Helm",
        "team": "vision",
    }
    assert hook["annotations"] == {
        "helm.sh/hook": "test",
        "helm.sh/hook-delete-policy": "before-hook-creation",
        "sidecar.istio.io/inject": "false",
    }
