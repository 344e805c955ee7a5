"""`sbatch slurm/sweep.sh` on a real Slurm cluster: one array job of the sweep's points, at
most two at once, results in S3, a point preempted mid-training that is requeued and resumes,
a point with a bad config that fails alone, and the summary of them all."""

from __future__ import annotations

import json

import pytest
import yaml
from helpers.runs import TINY_DATA, TINY_MODEL
from helpers.slurm import REPO, wait_for

from inat.storage import open_storage
from inat.sweeps.jobs import expand

pytestmark = pytest.mark.slow

SWEEP_SH = "slurm/sweep.sh"
EPOCHS = 6
ACTIVATIONS = ["relu", "gelu", "silu", "mish", "swish"]  # swish is not a choice: a bad config
# Small batches make an epoch long enough (a second or so) to be preempted in the middle.
JOB = {
    "name": "slurm-test",
    "overrides": [
        *(o for o in TINY_DATA if not o.startswith("data.batch_size=")),
        *TINY_MODEL,
        "data.batch_size=4",
        "model.batch_norm=false",
        "optimizer=adam",
        "optimizer.lr=0.003",
        "scheduler=constant",
        f"trainer.epochs={EPOCHS}",
    ],
    "sweep": {"strategy": "grid", "params": {"model.activation": ACTIVATIONS}},
}
# Array tasks of one CPU each, two at once; a time limit long enough that submitit counts
# the USR2 of a preemption as a preemption, not a time-out.
LAUNCHER = [
    "hydra.launcher.gpus_per_node=0",
    "hydra.launcher.cpus_per_task=1",
    "hydra.launcher.mem_gb=1",
    "hydra.launcher.timeout_min=60",
]


def _epochs(storage) -> list[int]:
    if not storage.exists("metrics.jsonl"):
        return []
    return [json.loads(line)["epoch"] for line in storage.read_text("metrics.jsonl").splitlines()]


def test_sweep_sh_runs_the_points_as_an_array_job_survives_preemption_and_summarizes(
    slurm, tmp_path, s3_bucket, aws_env
):
    job_file = tmp_path / "job.yaml"
    job_file.write_text(yaml.safe_dump({"job": JOB}))
    output = f"s3://{s3_bucket}/runs"
    points = expand(JOB)
    sweep = open_storage(f"{output}/{JOB['name']}")
    first = sweep.child(points[0].name)

    # The job file and some overrides from the environment, the rest as arguments.
    env = slurm.env(
        JOB=str(job_file),
        OVERRIDES=f"output={output} hydra.launcher.array_parallelism=2",
    )
    controller = slurm.sbatch(
        "--partition=high",  # never preempted: only the points are
        str(REPO / SWEEP_SH),
        f"data.cache_dir={tmp_path}/cache",
        *LAUNCHER,
        cwd=tmp_path,
        env=env,
    )
    log = tmp_path / f"inat-sweep-{controller}.out"

    # Preempt the running points once the first one is in its second epoch: a job of the
    # higher-priority partition needs the CPUs they hold.
    wait_for(lambda: len(_epochs(first)) >= 1, 180, f"an epoch of point 0 ({log})")
    slurm.sbatch("--partition=high", "--cpus-per-task=3", "--wrap=true", cwd=tmp_path)
    ended = slurm.wait_ended(controller, timeout=360, log=log)

    # The controller ends with FAILURE: one point has a bad config.
    assert ended["ExitCode"] == "1:0", log.read_text()[-3000:]
    tasks = slurm.jobs(f"inat-{JOB['name']}")
    assert sorted(int(t["ArrayTaskId"]) for t in tasks) == list(range(len(points)))
    assert {t["ArrayTaskThrottle"] for t in tasks} == {"2"}
    assert {t["JobState"] for t in tasks} == {"COMPLETED"}

    manifest = sweep.read_json("sweep.json")
    assert [p["name"] for p in manifest["points"]] == [p.name for p in points]
    summary = sweep.read_json("summary.json")
    assert summary["counts"] == {"done": 4, "failed": 1}
    rows = {row["index"]: row for row in summary["points"]}
    for point in points[:4]:
        result = sweep.child(point.name).read_json("result.json")
        assert result["status"] == rows[point.index]["status"] == "done", result
        assert result["epochs"] == EPOCHS
        assert _epochs(sweep.child(point.name)) == list(range(1, EPOCHS + 1))
        assert rows[point.index]["test_accuracy"] == result["test"]["accuracy"]
    assert summary["best"]["index"] in range(4)

    bad = rows[4]
    assert bad["status"] == "failed"
    assert "model.activation='swish'" in bad["error"]

    # Point 0 was preempted in its second epoch, requeued by Slurm, and resumed from its
    # checkpoint: never from epoch 0, and it ends with exactly the configured epochs.
    task0 = next(t for t in tasks if t["ArrayTaskId"] == "0")
    assert int(task0["Restarts"]) >= 1
    resumes = first.read_json("result.json")["resumes"]
    assert resumes and resumes[0]["epoch"] >= 1, resumes
    assert rows[0]["resumes"] == len(resumes)
