"""The rendered pod spec, executed: each pod's command, args and env from the rendered
Job run here against the S3 test server (see pod.py for what stands in for Kubernetes).

The sweep they write must be the one the local/Slurm path (`inat sweep JOBFILE`) writes
for the same job file: same manifest, same point folders, same files, same training.
"""

from __future__ import annotations

import json
import signal
from typing import Any

import pytest
import yaml
from helpers.runs import TINY, run_inat, without_timings

from inat.errors import ExitCode

from .helm import JOB_FILES, one, render
from .pod import prepare, run, start

pytestmark = pytest.mark.slow

DEMO = next(p for p in JOB_FILES if p.name == "demo_sweep.yaml")
SMOKE = next(p for p in JOB_FILES if p.name == "smoke.yaml")
SECRET_NAME = "inat-s3"
# What the test's shell must not hand to the pods: only the rendered env reaches S3.
ISOLATION = ("AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_EC2_METADATA_DISABLED")
# One thread per process: several trainings share this machine's cores, and busy-waiting
# thread pools make each of them many times slower.
THREADS = {"OMP_NUM_THREADS": "1"}


@pytest.fixture
def cluster(aws_env: dict[str, str], s3_server, s3_bucket: str) -> dict[str, Any]:
    """Chart values for the S3 test server, the Secret they name, and the pods' base env."""
    return {
        "bucket": s3_bucket,
        "values": {
            "s3": {"endpoint": s3_server.endpoint_url, "region": "us-east-1"},
            "credentials": {"existingSecret": SECRET_NAME},
        },
        "secrets": {
            SECRET_NAME: {
                "AWS_ACCESS_KEY_ID": aws_env["AWS_ACCESS_KEY_ID"],
                "AWS_SECRET_ACCESS_KEY": aws_env["AWS_SECRET_ACCESS_KEY"],
            }
        },
        "base_env": {**{name: aws_env[name] for name in ISOLATION}, **THREADS},
    }


def _pod(
    cluster: dict[str, Any], manifests: list[dict], root, index: int | None = None, kind="Job"
):
    return prepare(
        manifests,
        root,
        kind=kind,
        index=index,
        secrets=cluster["secrets"],
        base_env=cluster["base_env"],
    )


def _objects(s3_client, bucket: str, prefix: str) -> dict[str, bytes]:
    """Every object below prefix/, by key relative to it."""
    found = {}
    for page in s3_client.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=f"{prefix}/"
    ):
        for item in page.get("Contents", []):
            body = s3_client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
            found[item["Key"][len(prefix) + 1 :]] = body
    return found


def _metrics(objects: dict[str, bytes], key: str) -> list[dict]:
    return [json.loads(line) for line in objects[key].splitlines()]


def test_the_pods_write_the_same_sweep_as_the_local_path(cluster, s3_client, tmp_path):
    bucket = cluster["bucket"]
    overrides = [*TINY, "trainer.epochs=1"]
    manifests = render(
        [DEMO], {**cluster["values"], "output": f"s3://{bucket}/k8s", "overrides": overrides}
    )
    points = one(manifests, "Job")["spec"]["completions"]
    pods = [_pod(cluster, manifests, tmp_path / f"pod-{i}", index=i) for i in range(points)]
    # Two pods at a time, as the Indexed Job with parallelism 2 would run them.
    for first in range(0, len(pods), 2):
        running = [start(pod) for pod in pods[first : first + 2]]
        for process in running:
            output = process.communicate(timeout=300)[0]
            assert process.returncode == 0, output
        # The point that ends last writes summary.json, as no controller waits for them all.
        ended = "summary.json" in _objects(s3_client, bucket, "k8s/demo-sweep")
        assert ended == (first + 2 >= len(pods))

    done = run_inat(
        tmp_path, "sweep", str(DEMO), f"output=s3://{bucket}/local",
        f"data.cache_dir={tmp_path}/cache", *overrides, env=THREADS,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr

    k8s = _objects(s3_client, bucket, "k8s/demo-sweep")
    local = _objects(s3_client, bucket, "local/demo-sweep")
    assert set(k8s) == set(local)
    summaries = [json.loads(objects["summary.json"]) for objects in (k8s, local)]
    for summary in summaries:
        for row in [*summary["points"], summary["best"]]:
            del row["wall_seconds"], row["train_seconds"]
    assert summaries[0] == summaries[1]
    assert summaries[0]["counts"] == {"done": 4}
    manifest = json.loads(k8s["sweep.json"])
    assert manifest == json.loads(local["sweep.json"])
    names = [p["name"] for p in manifest["points"]]
    assert len(names) == points == 4
    assert {key.split("/")[0] for key in k8s} == {*names, "sweep.json", "summary.json"}
    for name in names:
        assert json.loads(k8s[f"{name}/result.json"])["status"] == "done"
        metrics = f"{name}/metrics.jsonl"
        assert without_timings(_metrics(k8s, metrics)) == without_timings(_metrics(local, metrics))


def test_a_point_with_bad_config_exits_with_the_code_that_fails_its_index(
    cluster, s3_client, tmp_path
):
    bucket = cluster["bucket"]
    manifests = render(
        [DEMO],
        {
            **cluster["values"],
            "output": f"s3://{bucket}/bad",
            "overrides": [*TINY, "trainer.epochs=0"],
        },
    )
    done = run(_pod(cluster, manifests, tmp_path, index=1))
    assert done.returncode == ExitCode.BAD_INPUT, done.stdout + done.stderr
    fail_index = one(manifests, "Job")["spec"]["podFailurePolicy"]["rules"][1]
    assert fail_index["action"] == "FailIndex"
    assert done.returncode in fail_index["onExitCodes"]["values"]
    assert "trainer.epochs=0 is not allowed" in done.stderr


def test_an_interrupted_pod_resumes_from_its_checkpoint_in_s3(cluster, s3_client, tmp_path):
    bucket, epochs = cluster["bucket"], 3
    overrides = [*TINY, f"trainer.epochs={epochs}", "model.dropout=0.0", "data.augment=false"]
    manifests = render(
        [SMOKE], {**cluster["values"], "output": f"s3://{bucket}/runs", "overrides": overrides}
    )
    first = start(_pod(cluster, manifests, tmp_path / "first"))
    marker = f"epoch 2/{epochs} 3/"
    seen = []
    for line in first.stdout:
        seen.append(line)
        if marker in line:
            first.send_signal(signal.SIGTERM)  # what the kubelet sends on eviction
            break
    seen.append(first.communicate(timeout=120)[0])
    assert any(marker in line for line in seen), "".join(seen)
    assert first.returncode == ExitCode.RETRY, "".join(seen)
    run_objects = _objects(s3_client, bucket, "runs/smoke")
    assert json.loads(run_objects["result.json"])["status"] == "interrupted"
    assert "checkpoints/latest.json" in run_objects

    # The retried pod is a new pod: fresh volumes, only S3 in common with the first.
    second = run(_pod(cluster, manifests, tmp_path / "second"))
    assert second.returncode == 0, second.stdout + second.stderr
    assert "resuming s3://" in second.stderr
    run_objects = _objects(s3_client, bucket, "runs/smoke")
    result = json.loads(run_objects["result.json"])
    assert result["status"] == "done"
    assert result["epochs"] == epochs
    assert result["resumes"][0]["epoch"] == 1
    assert [row["epoch"] for row in _metrics(run_objects, "metrics.jsonl")] == [1, 2, 3]


def test_a_pod_with_several_gpus_trains_with_one_process_each(cluster, s3_client, tmp_path):
    # No GPU here: trainer.cpu=true makes accelerate's --multi_gpu workers use gloo.
    bucket = cluster["bucket"]
    manifests = render(
        [SMOKE],
        {
            **cluster["values"],
            "output": f"s3://{bucket}/ddp",
            "overrides": [*TINY, "trainer.epochs=1", "trainer.cpu=true"],
            "resources": {"limits": {"nvidia.com/gpu": 2}, "requests": {"nvidia.com/gpu": 2}},
        },
    )
    pod = _pod(cluster, manifests, tmp_path)
    assert pod.argv[:2] == ["inat", "launch"]
    done = run(pod)
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(_objects(s3_client, bucket, "ddp/smoke")["result.json"])
    assert result["status"] == "done"
    assert result["devices"]["num_processes"] == 2


def test_an_adaptive_sweeps_pods_run_workers_that_complete_it(cluster, s3_client, tmp_path):
    bucket = cluster["bucket"]
    job_file = tmp_path / "bayes.yaml"
    job_file.write_text(
        yaml.safe_dump(
            {
                "job": {
                    "name": "k8s-bayes",
                    "sweep": {
                        "method": "bayes",
                        "run_cap": 4,
                        "parallelism": 2,
                        "parameters": {
                            "optimizer.lr": {
                                "distribution": "log_uniform_values",
                                "min": 1e-3,
                                "max": 1e-1,
                            }
                        },
                    },
                }
            }
        )
    )
    overrides = [*TINY, "trainer.epochs=1"]
    manifests = render(
        [job_file], {**cluster["values"], "output": f"s3://{bucket}/k8s", "overrides": overrides}
    )
    job = one(manifests, "Job")["spec"]
    assert job["completions"] == job["parallelism"] == 2
    pods = [start(_pod(cluster, manifests, tmp_path / f"pod-{i}", index=i)) for i in range(2)]
    for pod in pods:  # both at once, as the Indexed Job runs them
        output = pod.communicate(timeout=600)[0]
        assert pod.returncode == 0, output
    objects = _objects(s3_client, bucket, "k8s/k8s-bayes")
    claims = [json.loads(objects[f"claims/{i:04d}.json"]) for i in range(4)]
    assert {c["worker"] for c in claims} <= {"0", "1"}
    assert f"claims/{4:04d}.json" not in objects  # run_cap points, no more
    summary = json.loads(objects["summary.json"])  # written by the worker that ended last
    assert summary["method"] == "bayes" and summary["counts"] == {"done": 4}


def test_helm_test_runs_inat_smoke_against_the_releases_storage(cluster, s3_client, tmp_path):
    bucket = cluster["bucket"]
    s3_client.put_object(Bucket=bucket, Key="data/nature_12K.zip", Body=b"an archive")
    no_gpu = {"nvidia.com/gpu": None}
    manifests = render(
        [SMOKE],
        {
            **cluster["values"],
            "output": f"s3://{bucket}/runs",
            "data": {"source": f"s3://{bucket}/data/nature_12K.zip"},
            "resources": {"requests": no_gpu, "limits": no_gpu},
        },
    )
    pod = _pod(cluster, manifests, tmp_path, kind="Pod")
    assert pod.argv[:2] == ["inat", "smoke"]
    done = run(pod)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert any(
        line.startswith("PASS checkpoint") and f"written to s3://{bucket}/runs/.inat-smoke-" in line
        for line in lines
    ), done.stdout
    assert any(
        line.startswith("PASS data") and f"s3://{bucket}/data/nature_12K.zip can be read" in line
        for line in lines
    ), done.stdout
    assert "smoke: 4 passed, 0 failed, 0 skipped" in done.stdout
    # The probe checkpoint is gone: the release's output holds only what training writes.
    assert _objects(s3_client, bucket, "runs") == {}
