"""An adaptive (bayes) sweep on the real Slurm cluster: `sbatch slurm/sweep.sh JOB` submits
one array job of 3 worker tasks for 6 points; one task is requeued while its worker trains a
point. Every point ends, the interrupted one resumed with the values it was claimed with."""

from __future__ import annotations

import pytest
import yaml
from helpers.slurm import REPO, SLOW_EPOCHS, TASKS_ON_CPU, epochs, wait_for

from inat.storage import open_storage
from inat.sweeps.claims import read_claims

pytestmark = pytest.mark.slow

EPOCHS = 4
JOB = {
    "name": "slurm-bayes",
    "overrides": [*SLOW_EPOCHS, f"trainer.epochs={EPOCHS}"],
    "sweep": {
        "method": "bayes",
        "run_cap": 6,
        "parallelism": 3,
        "parameters": {
            "optimizer.lr": {"distribution": "log_uniform_values", "min": 1e-3, "max": 1e-2},
            "model.dropout": {"distribution": "uniform", "min": 0.0, "max": 0.5},
        },
    },
}


def test_a_bayes_sweep_of_three_worker_tasks_survives_a_requeue(slurm, tmp_path) -> None:
    job_file = tmp_path / "job.yaml"
    job_file.write_text(yaml.safe_dump({"job": JOB}))
    controller = slurm.sbatch(
        "--partition=high",
        str(REPO / "slurm" / "sweep.sh"),
        str(job_file),
        f"output={tmp_path}/out",
        f"data.cache_dir={tmp_path}/cache",
        *TASKS_ON_CPU,
        cwd=tmp_path,
    )
    log = tmp_path / f"inat-sweep-{controller}.out"
    sweep = open_storage(f"{tmp_path}/out/{JOB['name']}")

    def a_point_mid_way() -> bool:
        claims = read_claims(sweep) if sweep.exists("sweep.json") else []
        return any(1 <= len(epochs(sweep.child(c.point.name))) < EPOCHS for c in claims)

    wait_for(a_point_mid_way, 300, f"a point with an epoch done ({log})")
    claim = next(
        c for c in read_claims(sweep) if 1 <= len(epochs(sweep.child(c.point.name))) < EPOCHS
    )
    tasks = {int(t["ArrayTaskId"]): t for t in slurm.jobs(f"inat-{JOB['name']}")}
    assert len(tasks) == 3  # one task per worker
    task = tasks[int(claim.worker)]
    slurm.run("scontrol", "requeue", f"{task['ArrayJobId']}_{task['ArrayTaskId']}")

    ended = slurm.wait_ended(controller, timeout=900, log=log)
    assert ended["ExitCode"] == "0:0", log.read_text()[-3000:]
    summary = sweep.read_json("summary.json")
    assert summary["method"] == "bayes" and summary["counts"] == {"done": 6}
    claims = read_claims(sweep)
    assert [c.point.index for c in claims] == list(range(6))
    run = sweep.child(claim.point.name)
    assert run.read_json("result.json")["resumes"], "the requeued point started over"
    assert epochs(run) == list(range(1, EPOCHS + 1))  # each epoch trained once
    config = yaml.safe_load(run.read_text("config.yaml"))
    assert config["optimizer"]["lr"] == claim.params["optimizer.lr"]
    for other in claims:
        assert epochs(sweep.child(other.point.name)) == list(range(1, EPOCHS + 1))
