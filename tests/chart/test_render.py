"""What the chart renders: lint-clean, valid for every supported Kubernetes version, and the
batch features a training run or sweep needs (retries, exit codes, GPUs, credentials,
volumes, security)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from kubernetes_validate.utils import latest_version

from inat.errors import ExitCode

from .helm import (
    CHART,
    CI_VALUES,
    JOB_FILES,
    KUBE_VERSION,
    KUBERNETES_VERSIONS,
    OUTPUT,
    container,
    env_of,
    helm,
    lint,
    one,
    render,
    supported_versions,
    template,
)
from .pod import expand_refs

DEMO = next(p for p in JOB_FILES if p.name == "demo_sweep.yaml")
SMOKE = next(p for p in JOB_FILES if p.name == "smoke.yaml")
VALUE_SETS = [*JOB_FILES, *CI_VALUES]
CHART_YAML = yaml.safe_load((CHART / "Chart.yaml").read_text())


def _ids(paths: list[Path]) -> list[str]:
    return [f"{p.parent.name}/{p.name}" for p in paths]


def test_ci_value_sets_exist():
    assert {p.name for p in CI_VALUES} >= {
        "single-run-secret-values.yaml",
        "sweep-irsa-values.yaml",
        "multi-gpu-values.yaml",
        "kueue-batch-cluster-values.yaml",
    }


def test_every_supported_kubernetes_version_is_validated():
    # Chart.yaml claims >=1.29: every minor from there to the newest kubernetes-validate knows.
    assert KUBE_VERSION == ">=1.29.0-0"
    minors = [int(v.split(".")[1]) for v in KUBERNETES_VERSIONS]
    assert KUBERNETES_VERSIONS[0] == "1.29.0"
    assert KUBERNETES_VERSIONS[-1] == latest_version()
    assert minors == list(range(29, minors[-1] + 1))


def test_the_version_list_follows_kube_version_and_new_schemas():
    known = ["1.28.0", "1.29.0", "1.30.0", "1.9.0", "1.38.0"]
    assert supported_versions(">=1.29.0-0", known) == ["1.29.0", "1.30.0", "1.38.0"]
    assert supported_versions(">=1.29.0-0 <1.38.0-0", known) == ["1.29.0", "1.30.0"]
    with pytest.raises(ValueError, match=r"only >=X\.Y and <X\.Y"):
        supported_versions("~1.29", known)


@pytest.mark.parametrize("values_file", VALUE_SETS, ids=_ids(VALUE_SETS))
def test_helm_lint_is_clean(values_file):
    done = lint([values_file])
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 chart(s) failed" in done.stdout


@pytest.fixture(scope="module")
def rendered_value_sets(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Path], int]:
    """Every value set rendered into a file, and how many resources they hold."""
    folder = tmp_path_factory.mktemp("rendered")
    files, resources = [], 0
    for number, values_file in enumerate(VALUE_SETS):
        manifests = render([values_file])
        resources += len(manifests)
        files.append(folder / f"{number}-{values_file.stem}.yaml")
        files[-1].write_text(yaml.safe_dump_all(manifests))
    return files, resources


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_kubernetes_validate_strict_passes_every_value_set(version, rendered_value_sets):
    files, resources = rendered_value_sets
    validate = Path(sys.executable).with_name("kubernetes-validate")
    done = subprocess.run(
        [validate, "--strict", "--kubernetes-version", version, *map(str, files)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert (done.stdout + done.stderr).count(" passed for resource ") == resources


def test_a_single_run_is_a_job_that_fails_at_once_on_bad_config():
    manifests = render([SMOKE], {"backoffLimit": 5})
    spec = one(manifests, "Job")["spec"]
    assert spec["completions"] == 1
    assert spec["parallelism"] == 1
    assert spec["backoffLimit"] == 5
    assert "completionMode" not in spec
    assert "--index" not in container(manifests)["args"]
    assert spec["podFailurePolicy"]["rules"] == [
        {
            "action": "Ignore",
            "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
        },
        {
            "action": "FailJob",
            "onExitCodes": {
                "containerName": "inat",
                "operator": "In",
                "values": [int(ExitCode.BAD_INPUT)],
            },
        },
    ]


def test_a_sweep_is_one_indexed_job_with_per_point_retries():
    manifests = render(
        [DEMO],
        {"parallelism": 3, "backoffLimitPerIndex": 2, "maxFailedIndexes": 1},
    )
    spec = one(manifests, "Job")["spec"]
    assert spec["completionMode"] == "Indexed"
    assert spec["completions"] == 4
    assert spec["parallelism"] == 3
    assert spec["backoffLimitPerIndex"] == 2
    assert spec["maxFailedIndexes"] == 1
    assert "backoffLimit" not in spec
    rules = spec["podFailurePolicy"]["rules"]
    assert rules[0] == {
        "action": "Ignore",
        "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
    }
    assert rules[1]["action"] == "FailIndex"
    assert rules[1]["onExitCodes"]["values"] == [int(ExitCode.BAD_INPUT)]
    # Interrupted (75) and killed pods fall through to the default: retried, counted.
    assert ExitCode.RETRY not in rules[1]["onExitCodes"]["values"]
    args = container(manifests)["args"]
    assert args[:4] == ["sweep", "--index", "$(JOB_COMPLETION_INDEX)", "/etc/inat/job.yaml"]
    index_env = env_of(manifests)["JOB_COMPLETION_INDEX"]["valueFrom"]["fieldRef"]
    assert (
        index_env["fieldPath"] == "metadata.annotations['batch.kubernetes.io/job-completion-index']"
    )


def test_parallelism_and_failed_points_are_capped_by_the_number_of_points():
    spec = one(render([DEMO], {"parallelism": 50, "maxFailedIndexes": 10}), "Job")["spec"]
    assert spec["parallelism"] == 4
    assert spec["maxFailedIndexes"] == 4


def test_job_limits_come_from_values():
    spec = one(
        render([DEMO], {"activeDeadlineSeconds": 7200, "ttlSecondsAfterFinished": 60}), "Job"
    )["spec"]
    assert spec["activeDeadlineSeconds"] == 7200
    assert spec["ttlSecondsAfterFinished"] == 60
    spec = one(render([DEMO], {"ttlSecondsAfterFinished": None}), "Job")["spec"]
    assert "activeDeadlineSeconds" not in spec
    assert "ttlSecondsAfterFinished" not in spec


def test_the_pod_is_locked_down_and_writes_only_to_its_volumes():
    manifests = render([DEMO], {"shmSize": "12Gi", "terminationGracePeriodSeconds": 900})
    pod = one(manifests, "Job")["spec"]["template"]["spec"]
    main = container(manifests)
    assert pod["restartPolicy"] == "Never"
    assert pod["terminationGracePeriodSeconds"] == 900
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["automountServiceAccountToken"] is False
    assert main["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: volumes[m["name"]] for m in main["volumeMounts"]}
    assert mounts["/dev/shm"]["emptyDir"] == {"medium": "Memory", "sizeLimit": "12Gi"}
    assert "emptyDir" in mounts["/tmp"]
    assert "emptyDir" in mounts["/cache"]
    assert (
        mounts["/etc/inat"]["configMap"]["name"] == one(manifests, "ConfigMap")["metadata"]["name"]
    )
    env = env_of(manifests)
    assert env["HOME"]["value"] == "/tmp"
    assert main["workingDir"] == "/tmp"
    assert "data.cache_dir=/cache" in main["args"]


def test_a_shared_cache_claim_replaces_the_pods_own_cache():
    manifests = render([DEMO], {"data": {"cache": {"existingClaim": "inat-cache"}}})
    volumes = {v["name"]: v for v in one(manifests, "Job")["spec"]["template"]["spec"]["volumes"]}
    assert volumes["cache"] == {
        "name": "cache",
        "persistentVolumeClaim": {"claimName": "inat-cache"},
    }


@pytest.mark.parametrize(
    ("resources", "processes"),
    [
        ({"limits": {"nvidia.com/gpu": 1}}, 1),
        ({"limits": {"nvidia.com/gpu": 4}, "requests": {"nvidia.com/gpu": 4}}, 4),
        ({"limits": {"nvidia.com/gpu": None}, "requests": {"nvidia.com/gpu": "2"}}, 2),
        ({"limits": {"nvidia.com/gpu": None}, "requests": {"nvidia.com/gpu": None}}, 1),
    ],
)
def test_several_gpus_run_one_process_each_through_inat_launch(resources, processes):
    manifests = render([DEMO], {"resources": resources, "terminationGracePeriodSeconds": 400})
    main = container(manifests)
    env = env_of(manifests)
    if processes == 1:
        assert main["command"] == ["inat"]
        assert "TORCH_ELASTIC_SHUTDOWN_TIMEOUT" not in env
    else:
        assert main["command"] == [
            "inat", "launch", "--multi_gpu", "--num_processes", str(processes),
        ]  # fmt: skip
        # The launcher must leave its workers the grace period to checkpoint.
        assert int(env["TORCH_ELASTIC_SHUTDOWN_TIMEOUT"]["value"]) == 390
    assert main["args"][0] == "sweep"


def test_gpus_requested_without_a_limit_get_it_and_cpu_may_be_a_number():
    # Kubernetes refuses an extended resource's request without an equal limit.
    resources = {
        "requests": {"cpu": 0.5, "memory": "8Gi", "nvidia.com/gpu": "2"},
        "limits": {"memory": "8Gi", "nvidia.com/gpu": None},
    }
    rendered = container(render([DEMO], {"resources": resources}))["resources"]
    assert rendered["requests"]["cpu"] == 0.5
    assert rendered["requests"]["nvidia.com/gpu"] == rendered["limits"]["nvidia.com/gpu"] == "2"
    assert rendered["limits"]["memory"] == "8Gi"


def test_s3_keys_come_from_an_existing_secret():
    manifests = render(
        [SMOKE],
        {
            "credentials": {"existingSecret": "inat-s3", "sessionTokenKey": "token"},
            "s3": {"endpoint": "http://minio.minio:9000", "region": "eu-west-1"},
        },
    )
    env = env_of(manifests)
    assert env["AWS_ACCESS_KEY_ID"]["valueFrom"]["secretKeyRef"] == {
        "name": "inat-s3",
        "key": "AWS_ACCESS_KEY_ID",
    }
    assert env["AWS_SECRET_ACCESS_KEY"]["valueFrom"]["secretKeyRef"]["key"] == (
        "AWS_SECRET_ACCESS_KEY"
    )
    assert env["AWS_SESSION_TOKEN"]["valueFrom"]["secretKeyRef"]["key"] == "token"
    assert env["AWS_ENDPOINT_URL"]["value"] == "http://minio.minio:9000"
    assert env["AWS_REGION"]["value"] == "eu-west-1"
    assert [m["kind"] for m in manifests if m["kind"] == "ServiceAccount"] == []
    assert "serviceAccountName" not in one(manifests, "Job")["spec"]["template"]["spec"]


def test_irsa_uses_a_service_account_and_no_keys():
    role = "arn:aws:iam::123456789012:role/inat"
    manifests = render(
        [SMOKE],
        {"serviceAccount": {"create": True, "annotations": {"eks.amazonaws.com/role-arn": role}}},
        release="irsa",
    )
    account = one(manifests, "ServiceAccount")
    assert account["metadata"]["annotations"] == {"eks.amazonaws.com/role-arn": role}
    pod = one(manifests, "Job")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == account["metadata"]["name"] == "irsa-inat"
    assert not {n for n in env_of(manifests) if n.startswith("AWS_") and "KEY" in n}


def test_an_existing_service_account_is_used_as_it_is():
    manifests = render([SMOKE], {"serviceAccount": {"name": "training"}})
    assert not [m for m in manifests if m["kind"] == "ServiceAccount"]
    assert one(manifests, "Job")["spec"]["template"]["spec"]["serviceAccountName"] == "training"


def test_wandb_logs_with_the_key_from_a_secret():
    manifests = render(
        [SMOKE],
        {"wandb": {"enabled": True, "existingSecret": "wandb", "project": "p", "entity": "e"}},
    )
    env = env_of(manifests)
    assert env["WANDB_API_KEY"]["valueFrom"]["secretKeyRef"] == {
        "name": "wandb",
        "key": "WANDB_API_KEY",
    }
    args = container(manifests)["args"]
    assert {"logger=wandb", "logger.wandb.project=p", "logger.wandb.entity=e"} <= set(args)
    assert "logger=wandb" not in container(render([SMOKE]))["args"]


def test_overrides_come_after_the_charts_own_and_survive_variable_expansion():
    override = "trainer.epochs=${oc.env:EPOCHS,3}"
    manifests = render(
        [SMOKE],
        {
            "data": {"source": "s3://bucket/data/nature_12K.zip"},
            "overrides": ["data.cache_dir=/cache/elsewhere", override, "name=$(NOT_A_VAR)"],
        },
    )
    args = container(manifests)["args"]
    assert args[:2] == ["sweep", "/etc/inat/job.yaml"]
    assert args[2:5] == [
        f"output={OUTPUT}",
        "data.cache_dir=/cache",
        "data.source=s3://bucket/data/nature_12K.zip",
    ]
    # What the kubelet hands to the process is exactly what was given.
    env = {"NOT_A_VAR": "expanded"}
    assert [expand_refs(a, env) for a in args[5:]] == [
        "data.cache_dir=/cache/elsewhere",
        override,
        "name=$(NOT_A_VAR)",
    ]


STANDARD_LABELS = {
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
    "app.kubernetes.io/component",
    "app.kubernetes.io/part-of",
    "app.kubernetes.io/managed-by",
}


def test_every_object_and_pod_template_has_the_standard_labels(rendered_value_sets):
    files, _ = rendered_value_sets
    for file in files:
        for manifest in filter(None, yaml.safe_load_all(file.read_text())):
            where = f"{file.name}: {manifest['kind']}"
            labels = manifest["metadata"]["labels"]
            assert labels.keys() >= {*STANDARD_LABELS, "helm.sh/chart"}, where
            if manifest["kind"] == "Job":
                pod_labels = manifest["spec"]["template"]["metadata"]["labels"]
                # All but helm.sh/chart, which would change with every chart version.
                assert pod_labels.keys() >= STANDARD_LABELS, where
                assert "helm.sh/chart" not in pod_labels, where
                assert {k: labels[k] for k in STANDARD_LABELS} == {
                    k: pod_labels[k] for k in STANDARD_LABELS
                }, where


def test_the_recommended_labels_name_the_release_and_what_it_runs():
    manifests = render([DEMO], {"podLabels": {"team": "vision"}}, release="lr-sweep")
    pod_labels = one(manifests, "Job")["spec"]["template"]["metadata"]["labels"]
    assert pod_labels == {
        "app.kubernetes.io/name": "inat",
        "app.kubernetes.io/instance": "lr-sweep",
        "app.kubernetes.io/version": CHART_YAML["appVersion"],
        "app.kubernetes.io/component": "sweep",
        "app.kubernetes.io/part-of": "inat",
        "app.kubernetes.io/managed-by": "Helm",
        "team": "vision",
    }
    for manifest in manifests:
        assert manifest["metadata"]["labels"]["helm.sh/chart"] == f"inat-{CHART_YAML['version']}"
    single = one(render([SMOKE]), "Job")
    assert single["metadata"]["labels"]["app.kubernetes.io/component"] == "training-run"
    assert single["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"] == (
        "training-run"
    )


def test_pod_labels_do_not_replace_the_charts_own():
    clash = {"app.kubernetes.io/instance": "other", "app.kubernetes.io/component": "x"}
    job = one(render([DEMO], {"podLabels": clash}), "Job")
    pod_labels = job["spec"]["template"]["metadata"]["labels"]
    assert pod_labels["app.kubernetes.io/instance"] == "test"
    assert pod_labels["app.kubernetes.io/component"] == "sweep"


def test_a_new_chart_version_leaves_the_jobs_pod_template_as_it_is(tmp_path):
    # A Job's pod template cannot change: `helm upgrade` to a new chart with the same
    # values (e.g. to change parallelism) must not touch it.
    chart = tmp_path / "inat"
    shutil.copytree(CHART, chart)
    (chart / "Chart.yaml").write_text(yaml.safe_dump({**CHART_YAML, "version": "99.0.0"}))
    args = ["--namespace", "ml", "-f", str(DEMO), "--set", f"output={OUTPUT}"]
    jobs = []
    for path in (CHART, chart):
        done = helm("template", "test", str(path), *args)
        assert done.returncode == 0, done.stderr
        jobs.append(one([m for m in yaml.safe_load_all(done.stdout) if m], "Job"))
    assert jobs[1]["metadata"]["labels"]["helm.sh/chart"] == "inat-99.0.0"
    assert jobs[0]["spec"]["template"] == jobs[1]["spec"]["template"]


def test_long_release_names_keep_pod_names_within_limits():
    name = one(render([DEMO], release="a" * 53), "Job")["metadata"]["name"]
    assert len(name) <= 52


def test_notes_say_how_to_watch_and_where_the_results_are():
    done = helm(
        "install", "lr", str(CHART), "-f", str(DEMO), "--set", f"output={OUTPUT}",
        "--set", "s3.endpoint=http://minio:9000", "--namespace", "ml", "--dry-run=client",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    notes = done.stdout.split("NOTES:", 1)[1]
    assert 'Sweep "demo-sweep": 4 points' in notes
    assert "kubectl get job lr-inat -n ml -w" in notes
    assert "batch.kubernetes.io/job-completion-index=0" in notes
    assert f"aws --endpoint-url http://minio:9000 s3 ls {OUTPUT}/demo-sweep/" in notes


def test_notes_of_an_adaptive_sweep_give_its_budget_and_pods():
    bayes = next(p for p in JOB_FILES if p.name == "scratch_bayes.yaml")
    done = helm(
        "install", "b", str(CHART), "-f", str(bayes), "--set", f"output={OUTPUT}",
        "--namespace", "ml", "--dry-run=client",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    notes = done.stdout.split("NOTES:", 1)[1]
    assert 'Adaptive sweep "scratch-bayes" (bayes): 30 points taken by workers in 4 pods' in notes
    assert f"inat results {OUTPUT}/scratch-bayes --dashboard" in notes


@pytest.mark.parametrize(
    ("repository", "image"),
    [
        ("ghcr.io/inat-project/inat", "mirror.example.com:5000/inat-project/inat:0.1.0"),
        ("localhost/ml/inat", "mirror.example.com:5000/ml/inat:0.1.0"),
        ("inat-project/inat", "mirror.example.com:5000/inat-project/inat:0.1.0"),
    ],
)
def test_global_image_registry_and_pull_secrets_are_used(repository, image):
    manifests = render(
        [DEMO],
        {
            "global": {
                "imageRegistry": "mirror.example.com:5000",
                "imagePullSecrets": ["mirror", {"name": "shared"}, "regcred"],
                "storageClass": "a parent chart's own global",
            },
            "image": {"repository": repository, "tag": "0.1.0", "pullSecrets": ["regcred"]},
        },
    )
    pod = one(manifests, "Job")["spec"]["template"]["spec"]
    assert container(manifests)["image"] == image
    assert pod["imagePullSecrets"] == [{"name": "mirror"}, {"name": "shared"}, {"name": "regcred"}]


def test_the_chart_works_as_a_subchart(tmp_path):
    parent = tmp_path / "platform"
    shutil.copytree(CHART, parent / "charts" / "inat")
    (parent / "Chart.yaml").write_text(
        "apiVersion: v2\nname: platform\nversion: 1.0.0\n"
        "dependencies:\n  - name: inat\n    version: 0.1.0\n"
    )
    values = {
        "global": {"imageRegistry": "mirror.example.com", "imagePullSecrets": ["mirror"]},
        "inat": {"job": {"name": "smoke"}, "output": OUTPUT},
    }
    (parent / "values.yaml").write_text(yaml.safe_dump(values))
    done = helm("template", "ml-platform", str(parent), "--namespace", "ml")
    assert done.returncode == 0, done.stderr
    manifests = [m for m in yaml.safe_load_all(done.stdout) if m]
    job = one(manifests, "Job")
    pod = job["spec"]["template"]["spec"]
    assert pod["containers"][0]["image"] == "mirror.example.com/inat-project/inat:0.1.0"
    assert pod["imagePullSecrets"] == [{"name": "mirror"}]
    assert job["metadata"]["name"] == "ml-platform-inat"


def _resources(manifests: list[dict]) -> dict:
    return container(manifests)["resources"]


def test_the_pods_disk_request_covers_its_tmp_and_cache_volumes():
    # The scheduler does not count emptyDir sizeLimits: the request has to.
    resources = _resources(
        render([DEMO], {"tmpSize": "10Gi", "data": {"cache": {"sizeLimit": "50Gi"}}})
    )
    assert resources["requests"]["ephemeral-storage"] == "60Gi"
    assert "ephemeral-storage" not in resources["limits"]
    mixed = {"tmpSize": "512Mi", "data": {"cache": {"sizeLimit": "1G"}}}
    assert _resources(render([DEMO], mixed))["requests"]["ephemeral-storage"] == str(
        512 * 2**20 + 10**9
    )
    # A shared claim is not on the node's disk.
    claim = {"tmpSize": "8Gi", "data": {"cache": {"existingClaim": "inat-cache"}}}
    assert _resources(render([DEMO], claim))["requests"]["ephemeral-storage"] == "8Gi"
    # A limit set is kept, and a request set wins over the chart's sum.
    given = {"requests": {"ephemeral-storage": "100Gi"}, "limits": {"ephemeral-storage": "120Gi"}}
    resources = _resources(render([DEMO], {"resources": given}))
    assert resources["requests"]["ephemeral-storage"] == "100Gi"
    assert resources["limits"]["ephemeral-storage"] == "120Gi"


@pytest.mark.parametrize(
    ("size", "disk"),
    [
        (1e9, "1000000000"),
        (10737418240, "10Gi"),
        ("2E2", "200"),
        ("1.5Gi", "1536Mi"),
        ("1e-3", "1"),
    ],
)
def test_disk_sizes_in_every_quantity_form_are_added_up(size, disk):
    values = {"tmpSize": size, "data": {"cache": {"existingClaim": "inat-cache"}}}
    assert _resources(render([DEMO], values))["requests"]["ephemeral-storage"] == disk


def test_a_disk_limit_below_the_volumes_is_refused():
    done = template([DEMO], {"resources": {"limits": {"ephemeral-storage": "20Gi"}}})
    assert done.returncode != 0
    assert "resources.limits.ephemeral-storage (20Gi) is below the pod's request (60Gi" in (
        done.stderr
    )


def test_volume_ownership_is_changed_only_on_a_mismatch():
    pod = one(render([DEMO]), "Job")["spec"]["template"]["spec"]
    assert pod["securityContext"]["fsGroupChangePolicy"] == "OnRootMismatch"
    assert pod["securityContext"]["fsGroup"] == 1000


def test_job_metadata_suspend_and_scheduling_come_from_values():
    spread = [
        {
            "maxSkew": 1,
            "topologyKey": "topology.kubernetes.io/zone",
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": {"app.kubernetes.io/instance": "test"}},
        }
    ]
    manifests = render(
        [DEMO],
        {
            "jobLabels": {"team": "vision", "app.kubernetes.io/name": "not-the-charts"},
            "jobAnnotations": {"owner": "ml-team", "inat/points": "99"},
            "suspend": True,
            "schedulerName": "volcano",
            "topologySpreadConstraints": spread,
        },
    )
    job = one(manifests, "Job")
    assert job["metadata"]["labels"]["team"] == "vision"
    assert job["metadata"]["labels"]["app.kubernetes.io/name"] == "inat"
    assert job["metadata"]["annotations"] == {
        "inat/job-name": "demo-sweep",
        "inat/points": "4",
        "owner": "ml-team",
    }
    assert job["spec"]["suspend"] is True
    pod = job["spec"]["template"]["spec"]
    assert pod["schedulerName"] == "volcano"
    assert pod["topologySpreadConstraints"] == spread
    # The Job's own labels are not the pods': a selector of the chart's still matches.
    assert "team" not in job["spec"]["template"]["metadata"]["labels"]
    default = one(render([DEMO]), "Job")
    assert "suspend" not in default["spec"]
    assert "schedulerName" not in default["spec"]["template"]["spec"]


def test_extra_volumes_mounts_and_init_containers_are_added():
    init = {
        "name": "warm-cache",
        "image": "busybox:1.37",
        "command": ["sh", "-c", "true"],
        "volumeMounts": [{"name": "cache", "mountPath": "/cache"}],
    }
    manifests = render(
        [DEMO],
        {
            "extraVolumes": [{"name": "datasets", "persistentVolumeClaim": {"claimName": "ds"}}],
            "extraVolumeMounts": [{"name": "datasets", "mountPath": "/datasets", "readOnly": True}],
            "initContainers": [init],
        },
    )
    pod = one(manifests, "Job")["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert set(volumes) == {"job", "tmp", "cache", "shm", "datasets"}
    assert volumes["datasets"]["persistentVolumeClaim"] == {"claimName": "ds"}
    mounts = {m["mountPath"]: m for m in container(manifests)["volumeMounts"]}
    assert mounts["/datasets"] == {"name": "datasets", "mountPath": "/datasets", "readOnly": True}
    assert pod["initContainers"] == [init]
    assert [c["name"] for c in pod["containers"]] == ["inat"]


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"extraVolumes": [{"name": "tmp", "emptyDir": {}}]}, "extraVolumes[0]: the name tmp"),
        (
            {"extraVolumeMounts": [{"name": "x", "mountPath": "/cache/"}]},
            "extraVolumeMounts[0]: /cache/ is mounted by the chart already",
        ),
    ],
)
def test_extra_volumes_do_not_replace_the_charts_own(values, message):
    done = template([DEMO], values)
    assert done.returncode != 0
    assert message in done.stderr


def test_every_namespaced_object_names_the_release_namespace():
    manifests = render([DEMO], {"serviceAccount": {"create": True}})
    assert sorted(m["kind"] for m in manifests) == ["ConfigMap", "Job", "Pod", "ServiceAccount"]
    for manifest in manifests:
        assert manifest["metadata"]["namespace"] == "ml", manifest["kind"]


def test_chart_yaml_says_where_the_chart_comes_from():
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["home"].startswith("https://")
    assert chart["sources"] and all(s.startswith("https://") for s in chart["sources"])
    assert chart["icon"].startswith("https://") and chart["icon"].endswith("icon.svg")
    assert (CHART / "icon.svg").is_file()
    assert all(m["name"] for m in chart["maintainers"])


@pytest.mark.parametrize("job_file", [DEMO, SMOKE], ids=["sweep", "single-run"])
def test_a_kueue_queue_name_queues_the_job_suspended(job_file):
    manifests = render(
        [job_file],
        {
            "kueue": {"queueName": "gpu-queue"},
            "suspend": False,
            "jobLabels": {"kueue.x-k8s.io/queue-name": "not-this-one"},
        },
    )
    job = one(manifests, "Job")
    assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "gpu-queue"
    # Kueue admits a suspended Job and unsuspends it; the pods carry no queue label.
    assert job["spec"]["suspend"] is True
    assert "kueue.x-k8s.io/queue-name" not in job["spec"]["template"]["metadata"]["labels"]
    # What the Job does once admitted is unchanged.
    plain = one(render([job_file]), "Job")
    assert "kueue.x-k8s.io/queue-name" not in plain["metadata"]["labels"]
    for key in ("completions", "parallelism", "podFailurePolicy", "template"):
        assert job["spec"][key] == plain["spec"][key], key


def test_notes_say_how_to_follow_a_queued_or_suspended_job():
    def notes(*values: str) -> str:
        done = helm(
            "install", "lr", str(CHART), "-f", str(DEMO), "--set", f"output={OUTPUT}",
            *values, "--namespace", "ml", "--dry-run=client",
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return done.stdout.split("NOTES:", 1)[1]

    queued = notes("--set", "kueue.queueName=gpu-queue")
    assert "Queued in the Kueue LocalQueue gpu-queue" in queued
    assert "kubectl get workloads -n ml" in queued
    suspended = notes("--set", "suspend=true")
    assert 'kubectl patch job lr-inat -n ml --type merge -p \'{"spec":{"suspend":false}}\'' in (
        suspended
    )
    assert "Queued" not in notes() and "suspend" not in notes()
