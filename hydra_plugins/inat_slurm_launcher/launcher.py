"""The Hydra launcher of Slurm sweeps: hydra-submitit-launcher's, with two changes.

- `container` (the image the points run in) is read by the tasks, not passed to sbatch.
- `launch` waits until every task has left Slurm's queue (inat.sweeps.slurm.queue), not for
  submitit's result files: the plugin's own waits forever for a task that died without
  writing one (its wrapper killed, a node lost) where the cluster keeps no accounting, and
  takes the result a task wrote before it was requeued for the end of its point. How each
  task ended goes to tasks.json in the sweep's log folder, for the controller.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import submitit
from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus, filter_overrides
from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import BaseSubmititLauncher
from omegaconf import OmegaConf

from inat.sweeps.slurm.queue import TASKS, wait_until_ended

log = logging.getLogger(__name__)

# Keys of the launcher config that submitit's executor takes when it is made, not per job.
_EXECUTOR_KEYS = {"submitit_folder", "max_num_timeout"}


class SlurmLauncher(BaseSubmititLauncher):
    """Submits a Hydra multirun as one Slurm array job and waits for all of its tasks."""

    _EXECUTOR = "slurm"

    def __init__(self, container: Any = None, **params: Any) -> None:
        """`params` are hydra-submitit-launcher's; `container` is read by each task."""
        super().__init__(**params)

    def _executor(self) -> submitit.AutoExecutor:
        executor = submitit.AutoExecutor(
            folder=self.params["submitit_folder"],
            cluster=self._EXECUTOR,
            slurm_max_num_timeout=self.params["max_num_timeout"],
        )
        shared = set(OmegaConf.structured(BaseQueueConf).keys())
        executor.update_parameters(
            **{
                key if key in shared else f"{self._EXECUTOR}_{key}": value
                for key, value in self.params.items()
                if key not in _EXECUTOR_KEYS
            }
        )
        return executor

    def launch(
        self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
    ) -> Sequence[JobReturn]:
        """Submit one array task per set of overrides; wait until every task has left Slurm's
        queue; return how each ended (also written to tasks.json in the sweep's log folder)."""
        assert self.config is not None
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        jobs = self._submit(job_overrides, initial_job_idx)
        ends = wait_until_ended(str(self.params["name"]), [job.job_id for job in jobs])
        tasks = [
            {"job_id": job.job_id, "overrides": list(overrides), "end": ends[job.job_id]}
            for job, overrides in zip(jobs, job_overrides, strict=True)
        ]
        (sweep_dir / TASKS).write_text(json.dumps(tasks, indent=2) + "\n")
        return [
            JobReturn(overrides=task["overrides"], status=JobStatus.COMPLETED, _return_value=task)
            for task in tasks
        ]

    def _submit(
        self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int
    ) -> list[submitit.Job]:
        """Submit the multirun's jobs as one array job; its tasks, in order."""
        job_params = []
        for idx, overrides in enumerate(job_overrides, start=initial_job_idx):
            log.info("\t#%d : %s", idx, " ".join(filter_overrides(overrides)))
            job_params.append(
                (
                    list(overrides),
                    "hydra.sweep.dir",
                    idx,
                    f"job_id_for_{idx}",
                    Singleton.get_state(),
                )
            )
        jobs = self._executor().map_array(self, *zip(*job_params, strict=True))
        log.info(
            "submitted %d task(s) as Slurm job %s; logs in %s",
            len(jobs),
            jobs[0].job_id.split("_")[0],
            Path(str(self.params["submitit_folder"])).parent,
        )
        return jobs
