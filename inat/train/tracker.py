"""Where metrics go: metrics.jsonl in the run directory always, and the trackers chosen with
`logger=` (one, or several: logger=[wandb,tensorboard,mlflow,csv]).

W&B, TensorBoard and MLflow are Accelerate's own trackers (accelerate.tracking), driven
here rather than through `Accelerator(log_with=...)`: the Accelerator exists before the run
directory is checked, each tool takes the config in its own shape, and
`Accelerator.end_training` would end the process group the test still needs. What they
lack is written here: the CSV file (inat.train.csvlog), event files uploaded to an S3 run
directory, one MLflow run kept across resumes, and W&B's end-of-run extras.

Every tracker sees one step axis, the optimizer step: the training loss every
`trainer.log_every_n_steps` steps, each epoch's row at its last step, the test at the end.
W&B, TensorBoard and MLflow name the metrics in sections (`tracker_key`: train/loss,
val/accuracy, test/accuracy, bookkeeping/epoch); metrics.jsonl and the CSV keep the names
of metrics.jsonl. Only what `inat.secrets.redact` left of the config reaches them.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig

from inat import rundir
from inat.errors import ConfigError
from inat.rundir import RunDir, flatten
from inat.secrets import redact, redact_overrides
from inat.storage import Storage, is_s3
from inat.storage.local import LocalStorage
from inat.train.csvlog import CsvLog

if TYPE_CHECKING:
    from matplotlib.figure import Figure

log = logging.getLogger(__name__)

TENSORBOARD = "tensorboard"  # the event files' folder in the run directory
RUN_DIR_TAG = "inat.run_dir"  # the MLflow tag that finds a run directory's MLflow run


SECTIONS = ("train", "val", "test")
# What MLflow's UI opens an experiment as: model training, not MLflow 3's GenAI view.
MLFLOW_KIND = {"mlflow.experimentKind": "custom_model_development"}
# The metrics an HParams table shows for each run (TensorBoard), by their tracker names.
HPARAM_METRICS = ("val/accuracy", "val/loss", "test/accuracy", "test/loss")


def tracker_key(name: str) -> str:
    """The name of a metrics.jsonl metric in W&B, TensorBoard and MLflow: train/, val/ and
    test/ sections (train_loss: train/loss, lr: train/lr), and the run's counters and
    timings (epoch, step, skipped_steps, epoch_time) under bookkeeping/, out of the way of
    the charts a user compares."""
    if name in ("lr", "lr_step"):
        return f"train/{name}"
    section, _, rest = name.partition("_")
    return f"{section}/{rest}" if section in SECTIONS and rest else f"bookkeeping/{name}"


def wandb_run_id(run_uri: str) -> str:
    """A W&B run id derived from the run directory, so a requeued run resumes its W&B run."""
    return hashlib.sha1(run_uri.encode()).hexdigest()[:16]


def wandb_names(config: dict[str, Any], group: str | None) -> tuple[str | None, str]:
    """The W&B group and run name of a run, from its resolved config.

    A sweep point (run_dir = output/name/<point>) is named after its point folder and
    grouped by the sweep's name unless `group` is set; a single run is named `name`.
    MLflow's experiment and run are named the same way.
    """
    sweep_dir = f"{str(config['output']).rstrip('/')}/{config['name']}"
    parent, _, folder = str(config["run_dir"]).rstrip("/").rpartition("/")
    if parent == sweep_dir:
        return group or config["name"], folder
    return group, config["name"]


def params(config: dict[str, Any]) -> dict[str, str | int | float | bool]:
    """The resolved config as flat `dotted.key: value` pairs, lists and nulls as text, for
    the trackers that take flat parameters (MLflow, TensorBoard's hparams)."""
    return {
        key: value if isinstance(value, str | int | float | bool) else str(value)
        for key, value in flatten(redact(config)).items()
    }


class Tracker:
    """Records the metrics of one run attempt in every chosen tracker; main process only.

    `resumed_step` is the optimizer step the attempt continues from (0 for a new run):
    what an earlier attempt logged after it is dropped (CSV) or hidden (TensorBoard).
    """

    def __init__(
        self,
        run: Storage,
        logger: DictConfig | None,
        config: dict[str, Any],
        resumed_step: int = 0,
    ) -> None:
        self.run = run
        self.trackers: list[Any] = []  # accelerate.tracking.GeneralTracker
        self.wandb: Any = None  # the W&B run, for the extras only W&B takes
        self.mlflow: Any = None  # the MLflow tracker, for its artifacts
        self.mlflow_checkpoint = bool(logger and logger.mlflow and logger.mlflow.log_checkpoint)
        self.log_checkpoint = False
        self.board: Path | None = None  # the local folder of the TensorBoard event files
        self.csv = CsvLog(run, resumed_step) if logger and logger.csv is not None else None
        if not logger:
            return
        group, run_name = wandb_names(config, logger.wandb.group if logger.wandb else None)
        if logger.wandb is not None:
            self._start_wandb(logger.wandb, group, run_name, config)
        if logger.tensorboard is not None:
            self._start_tensorboard(config, resumed_step)
        if logger.mlflow is not None:
            self._start_mlflow(logger.mlflow.experiment or group or run_name, run_name, config)

    # -- starting each tracker
    def _start_wandb(
        self, cfg: DictConfig, group: str | None, run_name: str, config: dict[str, Any]
    ) -> None:
        from accelerate.tracking import WandBTracker

        tracker = WandBTracker(
            cfg.project,
            entity=cfg.entity,
            group=group,
            tags=list(cfg.tags),
            name=run_name,
            id=wandb_run_id(self.run.uri),
            resume="allow",
            config=redact(config),
        )
        # wandb records the command line; an override may carry a secret.
        argv, sys.argv = sys.argv, redact_overrides(sys.argv)
        try:
            tracker.start()
        finally:
            sys.argv = argv
        self.trackers.append(tracker)
        self.wandb, self.log_checkpoint = tracker.run, cfg.log_checkpoint
        # The summary keeps each section's best, not its last value.
        self.wandb.define_metric("val/accuracy", summary="max")
        self.wandb.define_metric("val/loss", summary="min")

    def _start_tensorboard(self, config: dict[str, Any], resumed_step: int) -> None:
        from accelerate.tracking import TensorBoardTracker

        if isinstance(self.run, LocalStorage):
            self.board = self.run.root / TENSORBOARD
        else:  # written here, uploaded at each epoch end and at the end
            self.board = Path(tempfile.mkdtemp(prefix="inat-tensorboard-"))
        # A resumed run hides what an earlier attempt logged after its checkpoint.
        purge = {"purge_step": resumed_step + 1} if resumed_step else {}
        tracker = TensorBoardTracker("", self.board, **purge)
        tracker.start()
        if not resumed_step:
            _write_hparams(tracker.writer, params(config))
        self.trackers.append(tracker)

    def _start_mlflow(self, experiment: str, run_name: str, config: dict[str, Any]) -> None:
        import mlflow
        from accelerate.tracking import MLflowTracker

        artifacts = None  # the server's artifact store
        if not os.environ.get("MLFLOW_TRACKING_URI"):
            database, artifacts = _local_mlflow(config["output"])
            mlflow.set_tracking_uri(database)
        uri = redact(self.run.uri)
        found = mlflow.search_runs(
            experiment_names=[experiment],
            filter_string=f"tags.`{RUN_DIR_TAG}` = '{uri}'",
            output_format="list",
        )
        run_id = found[0].info.run_id if found else None
        tracker = MLflowTracker(
            experiment,
            logging_dir=artifacts,
            run_id=run_id,
            run_name=run_name,
            tags={RUN_DIR_TAG: uri},
        )
        tracker.start()
        for key, value in MLFLOW_KIND.items():
            mlflow.MlflowClient().set_experiment_tag(
                tracker.active_run.info.experiment_id, key, value
            )
        # Parameters cannot change once logged: a resumed run logs only those it lacks.
        logged = tracker.active_run.data.params
        tracker.store_init_configuration(
            {k: v for k, v in params(config).items() if k not in logged}
        )
        self.trackers.append(tracker)
        self.mlflow = tracker
        log.info("MLflow run %s in experiment %s", tracker.active_run.info.run_id, experiment)

    # -- logging
    def log_step(self, values: dict[str, float], step: int, epoch: int) -> None:
        """Log the values of one optimizer step (the training loss every n steps)."""
        self._log({"epoch": epoch, **values}, step)

    def log_epoch(self, history: list[dict[str, Any]]) -> None:
        """Publish the metrics of every epoch so far; the last row is the new one."""
        RunDir(self.run).write_metrics(history)
        self._log(history[-1], history[-1]["step"])
        self._publish()

    def finish(self, result: dict[str, Any], classes: list[str], best: str | None) -> None:
        """Log the test metrics, the plots and each tracker's extras, then close every tracker.

        `result` is what result.json records of the finished run (its "test": loss,
        accuracy, per-class accuracy, confusion matrix); `best` is the best checkpoint's
        path in the run directory.
        """
        test, final = result["test"], result["final"] or {}
        scores = {"test_loss": test["loss"], "test_accuracy": test["accuracy"]}
        if test.get("top5_accuracy") is not None:
            scores["test_top5_accuracy"] = test["top5_accuracy"]
        step = final.get("step", 0)
        self._log({"epoch": result["epochs"], **scores}, step)
        figures = _plots(self.run) if self.trackers else {}
        with tempfile.TemporaryDirectory(prefix="inat-artifact-") as scratch:
            if self.wandb is not None:
                self.wandb.summary.update({"val/best_accuracy": result["best_val_accuracy"]})
                self._wandb_extras(test, classes, figures)
                if self.log_checkpoint and best:
                    self._wandb_checkpoint(best, Path(scratch), result["best_epoch"])
            if self.mlflow is not None:
                self._mlflow_artifacts(result, figures, best, Path(scratch))
            for tracker in self.trackers:
                if tracker.name == "tensorboard":
                    for name, figure in figures.items():
                        tracker.writer.add_figure(f"plots/{name}", figure, step, close=False)
                tracker.finish()
        self._publish()
        if self.board is not None and not isinstance(self.run, LocalStorage):
            shutil.rmtree(self.board, ignore_errors=True)  # uploaded: the local copy goes

    def abort(self, interrupted: bool) -> None:
        """Close every tracker after an attempt that failed or was interrupted, keeping
        what it logged: the CSV and event files are published, the W&B run ends with exit
        code 1, the MLflow run as KILLED (a resume continues it) or FAILED."""
        for tracker in self.trackers:
            if tracker.name == "wandb":
                tracker.run.finish(exit_code=1)
            elif tracker.name == "mlflow":
                import mlflow

                mlflow.end_run("KILLED" if interrupted else "FAILED")
            else:
                tracker.finish()
        self._publish()

    def _log(self, values: dict[str, Any], step: int) -> None:
        named = {tracker_key(key): value for key, value in values.items()}
        for tracker in self.trackers:
            tracker.log(named, step=step)
        if self.csv is not None:
            self.csv.add({"step": step, **values})

    def _publish(self) -> None:
        """Write the CSV, and upload the event files to a run directory on S3."""
        if self.csv is not None:
            self.csv.write()
        if self.board is None or isinstance(self.run, LocalStorage):
            return
        for path in sorted(self.board.rglob("*")):
            if path.is_file():
                self.run.upload_file(path, f"{TENSORBOARD}/{path.relative_to(self.board)}")

    # -- what only MLflow gets
    def _mlflow_artifacts(
        self, result: dict[str, Any], figures: dict[str, Figure], best: str | None, scratch: Path
    ) -> None:
        """The best validation accuracy, and as artifacts the run's config, metrics, result
        and plots (and its best checkpoint with logger.mlflow.log_checkpoint)."""
        import mlflow

        run_id = self.mlflow.active_run.info.run_id
        client = mlflow.MlflowClient()
        client.log_metric(run_id, "val/best_accuracy", result["best_val_accuracy"])
        for name in (rundir.CONFIG, rundir.METRICS):
            self.run.download_file(name, scratch / name)
            client.log_artifact(run_id, str(scratch / name))
        client.log_dict(run_id, result, rundir.RESULT)
        for name, figure in figures.items():
            client.log_figure(run_id, figure, f"plots/{name}.png")
        if self.mlflow_checkpoint and best:
            local = scratch / "state.pt"
            self.run.download_file(best, local)
            client.log_artifact(run_id, str(local), "checkpoint")

    # -- what only W&B gets
    def _wandb_extras(
        self, test: dict[str, Any], classes: list[str], figures: dict[str, Figure]
    ) -> None:
        """The test confusion matrix and per-class accuracy as W&B charts, and the run's
        plots (inat.results.plots) as images."""
        import wandb

        pairs = [
            (actual, predicted)
            for actual, row in enumerate(test["confusion_matrix"])
            for predicted, count in enumerate(row)
            for _ in range(count)
        ]
        y_true, preds = ([p[0] for p in pairs], [p[1] for p in pairs])
        table = wandb.Table(
            columns=["class", "accuracy"],
            data=[[name, test["per_class_accuracy"][name]] for name in classes],
        )
        self.wandb.log(
            {
                "test/confusion_matrix": wandb.plot.confusion_matrix(
                    y_true=y_true, preds=preds, class_names=classes, title="Test confusion matrix"
                ),
                "test/per_class_accuracy": wandb.plot.bar(
                    table, "class", "accuracy", title="Per-class test accuracy"
                ),
                **{f"plots/{name}": _wandb_image(name, fig) for name, fig in figures.items()},
            }
        )

    def _wandb_checkpoint(self, relpath: str, scratch: Path, best_epoch: int | None) -> None:
        """Upload the best checkpoint as a model artifact (logger.wandb.log_checkpoint)."""
        import wandb

        local = scratch / Path(relpath).name
        self.run.download_file(relpath, local)
        artifact = wandb.Artifact(
            f"model-{self.wandb.id}",
            type="model",
            metadata={"best_epoch": best_epoch, "path": relpath},
        )
        artifact.add_file(str(local), name="state.pt")
        self.wandb.log_artifact(artifact, aliases=["best", f"epoch-{best_epoch}"])


def _local_mlflow(output: str) -> tuple[str, str]:
    """The tracking URI and artifact location of MLflow without a server
    (MLFLOW_TRACKING_URI unset): a database and a folder in the output folder, beside the
    run directories (MLflow's own defaults are ./mlflow.db and ./mlruns in the current
    directory). ConfigError for an output on S3."""
    if is_s3(output):
        raise ConfigError(
            f"logger=mlflow with output={output} needs an MLflow server: set "
            "MLFLOW_TRACKING_URI (e.g. http://mlflow:5000). Without one MLflow writes a local "
            "database, which a job's machine would keep"
        )
    folder = Path(output).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    log.info(
        "MLflow: MLFLOW_TRACKING_URI is not set; runs go to %s (mlflow ui --backend-store-uri %s)",
        uri,
        uri,
    )
    return uri, (folder / "mlartifacts").as_uri()


def _plots(run: Storage) -> dict[str, Figure]:
    """The plots `inat results` draws for this run, by name."""
    from inat.results.collect import collect
    from inat.results.plots import draw

    # The run's own storage: opened again from its URI, it would lose the run's settings
    # (storage.endpoint_url) and reach for AWS's endpoint.
    return draw(collect(run))


def _wandb_image(name: str, figure: Figure) -> Any:
    import wandb
    from PIL import Image

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", bbox_inches="tight")
    return wandb.Image(Image.open(io.BytesIO(buffer.getvalue())), caption=name)


def _write_hparams(writer: Any, values: dict[str, Any]) -> None:
    """The run's config as TensorBoard HParams, in the run's own event file (torch's
    add_hparams writes a second, timestamp-named run), with HPARAM_METRICS as its metrics:
    the HParams table shows their last values, the final ones once the run ends."""
    from torch.utils.tensorboard.summary import hparams

    for summary in hparams(values, dict.fromkeys(HPARAM_METRICS, 0.0)):
        writer.file_writer.add_summary(summary)
    writer.flush()
