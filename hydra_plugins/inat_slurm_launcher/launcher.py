"""The Hydra launcher of Slurm sweeps: hydra-submitit-launcher's, with two changes.

- `container` (the image the points run in) is read by the tasks, not passed to sbatch.
- `launch` waits for every task before it returns: the plugin's own stops at the first task
  that died outside Python (killed for memory, a node failure), which would leave the tasks
  after it running while the controller summarizes the sweep.
"""

from __future__ import annotations

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
        """Submit one array task per set of overrides; return every task's outcome."""
        assert self.config is not None
        executor = self._executor()
        Path(str(self.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
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
        jobs = executor.map_array(self, *zip(*job_params, strict=True))
        log.info(
            "submitted %d task(s) as Slurm job %s; logs in %s",
            len(jobs),
            jobs[0].job_id.split("_")[0],
            Path(str(self.params["submitit_folder"])).parent,
        )
        return [
            self._wait(job, overrides) for job, overrides in zip(jobs, job_overrides, strict=True)
        ]

    @staticmethod
    def _wait(job: submitit.Job, overrides: Sequence[str]) -> JobReturn:
        """The task's return, or a failed one when the task ended without returning."""
        try:
            return job.results()[0]
        except Exception as e:
            log.error("task %s (%s) ended without a result: %s", job.job_id, overrides, e)
            return JobReturn(overrides=list(overrides), status=JobStatus.FAILED, _return_value=e)
