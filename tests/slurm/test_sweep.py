"""`sbatch slurm/sweep.sh` on a real Slurm cluster: one array job of the sweep's points, at
most two at once, results in S3, a point preempted mid-training that is requeued and resumes,
a point with a bad config that fails alone, and the summary of them all."""

from __future__ import annotations

import pytest
import yaml
from helpers.slurm import REPO, SLOW_EPOCHS, TASKS_ON_CPU, epochs, wait_for

from inat.storage import open_storage
from inat.sweeps.jobs import expand

pytestmark = pytest.mark.slow

SWEEP_SH = "slurm/sweep.sh"
EPOCHS = 6
ACTIVATIONS = ["relu", "gelu", "silu", "mish", "swish"]  # swish is not a choice: a bad config
JOB = {
    "name": "slurm-test",
    "overrides": [*SLOW_EPOCHS, f"trainer.epochs={EPOCHS}"],
    "sweep": {"strategy": "grid", "params": {"model.activation": ACTIVATIONS}},
}


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
        *TASKS_ON_CPU,
        cwd=tmp_path,
        env=env,
    )
    log = tmp_path / f"inat-sweep-{controller}.out"

    # Preempt the running points once the first one is in its second epoch: a job of the
    # higher-priority partition needs the CPUs they hold.
    wait_for(lambda: len(epochs(first)) >= 1, 180, f"an epoch of point 0 ({log})")
    slurm.sbatch("--partition=high", "--cpus-per-task=3", "--wrap=true", cwd=tmp_path)
    ended = slurm.wait_ended(controller, timeout=360, log=log)

    # The controller ends with FAILURE: one point has a bad config.
    assert ended["ExitCode"] == "1:0", log.read_text()[-3000:]
    tasks = slurm.jobs(f"inat-{JOB['name']}")
    assert sorted(int(t["ArrayTaskId"]) for t in tasks) == list(range(len(points)))
    assert {t["ArrayTaskThrottle"] for t in tasks} == {"2"}
    # Slurm's view agrees: the bad point's task failed with the point's exit code.
    states = {int(t["ArrayTaskId"]): (t["JobState"], t["ExitCode"]) for t in tasks}
    assert states == {**{i: ("COMPLETED", "0:0") for i in range(4)}, 4: ("FAILED", "65:0")}

    manifest = sweep.read_json("sweep.json")
    assert [p["name"] for p in manifest["points"]] == [p.name for p in points]
    summary = sweep.read_json("summary.json")
    assert summary["counts"] == {"done": 4, "failed": 1}
    rows = {row["index"]: row for row in summary["points"]}
    for point in points[:4]:
        result = sweep.child(point.name).read_json("result.json")
        assert result["status"] == rows[point.index]["status"] == "done", result
        assert result["epochs"] == EPOCHS
        assert epochs(sweep.child(point.name)) == list(range(1, EPOCHS + 1))
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
