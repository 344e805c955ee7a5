"""`sbatch slurm/train.sh` on a real Slurm cluster: srun starts `inat launch`, which
starts two training processes (DDP on the CPU) that meet through the rendezvous the script
sets up; the warning before a time limit makes them checkpoint, the script requeues the
job, and the run resumes to exactly its configured epochs."""

from __future__ import annotations

import json

import pytest
from helpers.runs import TINY, location, read_metrics
from helpers.slurm import REPO, wait_for

pytestmark = pytest.mark.slow

EPOCHS = 5


def test_train_sh_trains_on_two_processes_and_resumes_after_the_time_limit_warning(slurm, tmp_path):
    overrides = [
        *(o for o in TINY if not o.startswith(("trainer.epochs=", "data.batch_size="))),
        *location(tmp_path),
        "data.batch_size=8",  # 4 per process: epochs long enough to be stopped in the middle
        f"trainer.epochs={EPOCHS}",
        "trainer.cpu=true",
        "name=ddp",
    ]
    job = slurm.sbatch(
        "--gpus-per-node=0",
        "--cpus-per-task=2",
        "--mem=2G",
        str(REPO / "slurm" / "train.sh"),
        *overrides,
        cwd=tmp_path,
        env=slurm.env(PROCS_PER_NODE="2"),
    )
    log = tmp_path / f"inat-train-{job}.out"
    run_dir = tmp_path / "out" / "ddp"
    metrics = run_dir / "metrics.jsonl"
    wait_for(lambda: metrics.exists() and metrics.read_text().strip(), 180, f"an epoch ({log})")

    # What Slurm sends before the time limit (--signal=B:USR2@...): to the batch script.
    slurm.run("scancel", "--batch", "--signal=USR2", job)
    ended = slurm.wait_ended(job, timeout=240, log=log)

    assert ended["JobState"] == "COMPLETED", log.read_text()[-3000:]
    assert ended["Restarts"] == "1"
    result = json.loads((run_dir / "result.json").read_text())
    assert result["status"] == "done"
    assert result["devices"]["num_processes"] == 2
    assert result["epochs"] == EPOCHS
    assert [row["epoch"] for row in read_metrics(run_dir)] == list(range(1, EPOCHS + 1))
    assert len(result["resumes"]) == 1 and result["resumes"][0]["epoch"] >= 1, result["resumes"]
