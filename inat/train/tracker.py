"""Where epoch metrics go: metrics.jsonl in the run directory always, W&B when configured."""

from __future__ import annotations

import hashlib
import logging
import sys
from typing import Any

from omegaconf import DictConfig

from inat.rundir import RunDir
from inat.secrets import redact_overrides
from inat.storage import Storage

log = logging.getLogger(__name__)


def wandb_run_id(run_uri: str) -> str:
    """A W&B run id derived from the run directory, so a requeued run resumes its W&B run."""
    return hashlib.sha1(run_uri.encode()).hexdigest()[:16]


def wandb_names(config: dict[str, Any], group: str | None) -> tuple[str | None, str]:
    """The W&B group and run name of a run, from its resolved config.

    A sweep point (run_dir = output/name/<point>) is named after its point folder and
    grouped by the sweep's name unless `group` is set; a single run is named `name`.
    """
    sweep_dir = f"{str(config['output']).rstrip('/')}/{config['name']}"
    parent, _, folder = str(config["run_dir"]).rstrip("/").rpartition("/")
    if parent == sweep_dir:
        return group or config["name"], folder
    return group, config["name"]


class Tracker:
    """Records one row per epoch and the final summary; call only on the main process."""

    def __init__(
        self,
        run: Storage,
        wandb_cfg: DictConfig | None,
        config: dict[str, Any],
    ) -> None:
        self.run = run
        self.wandb = None
        if wandb_cfg is not None:
            import wandb

            group, run_name = wandb_names(config, wandb_cfg.group)
            # wandb records the command line; an override may carry a secret.
            argv, sys.argv = sys.argv, redact_overrides(sys.argv)
            try:
                self.wandb = wandb.init(
                    project=wandb_cfg.project,
                    entity=wandb_cfg.entity,
                    group=group,
                    tags=list(wandb_cfg.tags),
                    name=run_name,
                    id=wandb_run_id(run.uri),
                    resume="allow",
                    config=config,
                )
            finally:
                sys.argv = argv

    def log_epoch(self, history: list[dict[str, Any]]) -> None:
        """Publish the metrics of every epoch so far; the last row is the new one."""
        RunDir(self.run).write_metrics(history)
        if self.wandb is not None:
            self.wandb.log(history[-1], step=history[-1]["epoch"])

    def finish(self, summary: dict[str, Any], exit_code: int) -> None:
        """Record the final metrics and close the W&B run."""
        if self.wandb is not None:
            self.wandb.summary.update(summary)
            self.wandb.finish(exit_code=exit_code)
