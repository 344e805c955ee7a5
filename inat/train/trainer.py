"""The training loop: a composed config in, a finished run directory out.

    inat train                                                # one process: the CPU or one GPU
    inat launch --multi_gpu --num_processes 4 train ...       # DDP on 4 GPUs of one node
    inat launch --multi_gpu --num_processes 2 train trainer.cpu=true    # DDP on the CPU

`train(cfg)` checks the config, builds the Accelerator and a `Trainer`, whose `fit()` reads
top to bottom: data; resume; the log block saying what is trained; the epoch loop (train
an epoch, validate, epoch-end callbacks, checkpoint); the test of the best checkpoint;
result.json. Only the main process writes.

A run directory that holds a checkpoint (or a finished run) is continued only with the
config it was started with (`inat.rundir.UNCOMPARED_KEYS` may differ). trainer.epochs
may be raised, for a finished run too: the run continues to the new count, and the LR
schedule is rebuilt for the new total number of steps and continues from the current
step (`inat.train.optim.resume_scheduler`). Fewer epochs than the run finished are
refused (exit 65). A run that an epoch-end callback stopped (early stopping) stays done.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import torch
from accelerate import Accelerator, DataLoaderConfiguration
from accelerate.state import AcceleratorState
from accelerate.utils import broadcast_object_list, gather_object, set_seed
from omegaconf import DictConfig, OmegaConf, open_dict
from timm.utils import ModelEmaV3
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from inat.compose import validate
from inat.data import DataLoaders, build_dataloaders, check_source
from inat.errors import ConfigError, InatError, Interrupted, TransientError
from inat.lease import Lease, holder_id
from inat.models import FineTuneModel, build_model
from inat.progress import Progress
from inat.rundir import CHECKPOINTS, RunDir, RunLog, Status, now
from inat.secrets import redact
from inat.storage import open_storage, storage_settings
from inat.train.callbacks import Callback, EarlyStopping, StopRun
from inat.train.checkpoint import CheckpointManager, rng_state, set_rng_state
from inat.train.describe import describe_run, parameter_counts
from inat.train.ema import build_ema
from inat.train.features import feature_loaders, use_cached_features
from inat.train.mixing import Mixing
from inat.train.optim import build_optimizer, build_scheduler, resume_scheduler
from inat.train.scoring import Evaluation, evaluate
from inat.train.signals import StopRequest
from inat.train.state import TrainState
from inat.train.tracker import Tracker
from inat.train.versions import versions

log = logging.getLogger(__name__)


def train(cfg: DictConfig, callbacks: Sequence[Callback] = ()) -> dict[str, Any]:
    """Train the run `cfg.run_dir` to its end, resuming from its latest checkpoint.

    `callbacks` see each epoch's metrics row and may end the run with a status of their
    choosing (see inat.train.callbacks). Returns the content of result.json. Raises
    InatError subclasses whose `exit_code` says whether a retry can help.
    """
    validate(cfg)  # a config composed by hand (a test, a notebook) is checked too
    accelerator = Accelerator(
        cpu=cfg.trainer.cpu,
        mixed_precision=cfg.trainer.mixed_precision,
        gradient_accumulation_steps=cfg.trainer.grad_accum_steps,
        dataloader_config=DataLoaderConfiguration(
            use_seedable_sampler=True,
            data_seed=cfg.seed,
            # Batches from pinned memory are copied while the GPU still computes.
            non_blocking=True,
        ),
    )
    if not accelerator.is_main_process:
        logging.getLogger("inat").setLevel(logging.WARNING)
    try:
        with StopRequest() as stop:
            return Trainer(cfg, accelerator, callbacks, stop).run()
    finally:
        # One accelerator state per process; a multirun starts its next point afresh.
        AcceleratorState._reset_state(reset_partial_state=True)


@dataclass
class _Epoch:
    """What an epoch's training left for its end: sums, time, counters before it."""

    sums: torch.Tensor  # this process's loss x samples, correct, samples
    seconds: float
    resumed_count: float  # samples seen before a mid-epoch resume
    skipped_before: int
    nonfinite_before: int


class Trainer:
    """One attempt at one run: built from the config (bad values fail before any data is
    read), then `run()`."""

    cfg: DictConfig
    accelerator: Accelerator
    main: bool  # the process that writes and logs
    callbacks: list[Callback]
    stop: StopRequest  # raised by a stop signal
    epochs: int  # trainer.epochs
    batch_size: int  # per process and micro-batch
    model: nn.Module  # the whole model: what checkpoints hold
    net: nn.Module  # what the loop trains: the prepared model, or its head on cached features
    ema: ModelEmaV3 | None  # the moving average of the model's weights (trainer.ema_decay)
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    features: bool  # the head trains on cached backbone features (inat.train.features)
    parameters: dict[str, Any]  # result.json's parameter counts
    config: dict[str, Any]  # the resolved config, redacted: config.yaml and checkpoints
    run_dir: RunDir
    lease: Lease  # one process trains the run at a time (held by the main process)
    ckpts: CheckpointManager
    saved: dict[str, Any] | None  # the checkpoint to resume from, until it is loaded
    recorded_epochs: int | None  # trainer.epochs of the previous attempt
    data: DataLoaders
    train_dl: DataLoader
    val_dl: DataLoader
    test_dl: DataLoader
    steps_per_epoch: int
    state: TrainState
    mixing: Mixing  # mixup/CutMix of the batches, and the loss that goes with them
    nonfinite_streak: int  # optimizer steps in a row whose loss was not finite
    runlog: RunLog | None  # train.log, on the main process
    tracker: Tracker | None  # on the main process
    started: float

    def __init__(
        self,
        cfg: DictConfig,
        accelerator: Accelerator,
        callbacks: Sequence[Callback],
        stop: StopRequest,
    ) -> None:
        self.started = time.perf_counter()
        self.cfg, self.accelerator, self.stop = cfg, accelerator, stop
        self.main = accelerator.is_main_process
        patience = cfg.trainer.early_stopping_patience
        self.callbacks = [*([EarlyStopping(patience)] if patience else []), *callbacks]
        self.epochs = cfg.trainer.epochs
        self.batch_size = per_process_batch(cfg, accelerator)
        # Each process draws its own augmentations and dropout masks (seed + process index);
        # DDP starts every process from process 0's initial weights.
        set_seed(cfg.seed, device_specific=True)
        self.settings = storage_settings(cfg.storage)
        self.model = build_model(
            cfg.model, cfg.data.num_classes, cfg.data.image_size, self.settings
        )
        if cfg.trainer.channels_last:
            # NHWC convolutions: faster on tensor cores and with oneDNN on the CPU.
            self.model = self.model.to(memory_format=torch.channels_last)
        self.parameters = parameter_counts(self.model)
        self.optimizer = build_optimizer(cfg.optimizer, self.model.param_groups())
        self.mixing = Mixing(cfg.trainer, cfg.data.num_classes)
        self.features = use_cached_features(
            cfg.trainer.cache_features, self.model, cfg.data.augment, self.mixing.active
        )
        self.config = redact(OmegaConf.to_container(cfg, resolve=True))
        self.state, self.nonfinite_streak = TrainState(), 0
        self.saved, self.recorded_epochs = None, None
        self.runlog, self.tracker = None, None

        # -- preflight: the data can be read, the run directory written
        check_source(cfg.data.source, self.settings)
        storage = open_storage(cfg.run_dir, self.settings)
        if self.main:
            storage.check_writable()
        self.run_dir = RunDir(storage)
        self.ckpts = CheckpointManager(self.run_dir.checkpoints, keep=cfg.trainer.keep_checkpoints)

    def run(self) -> dict[str, Any]:
        """Take the run directory's lease, check it, then fit; record how an attempt that
        failed ended. Only the main process holds the lease and writes."""
        self.lease = Lease(self.run_dir.storage, holder_id(), self.cfg.trainer.lease_timeout_s)
        with (
            self.run_dir.train_log() if self.main else nullcontext() as self.runlog,
            self.lease.held() if self.main else nullcontext(),
        ):
            try:
                done = self.check_run_dir()
            except ConfigError as e:  # a refused run directory keeps its result.json
                self._note(logging.ERROR, f"refused: {e}")
                raise
            if done is not None:
                return done
            try:
                return self.fit()
            except Exception as e:
                self._record_failure(e)
                raise

    def check_run_dir(self) -> dict[str, Any] | None:
        """Refuse a run directory that holds a run with another config or more epochs;
        return its result.json when it is finished and there is nothing more to train."""
        status = self.run_dir.status()
        ended = status in (Status.DONE, Status.PRUNED)
        found = None if ended else self.ckpts.latest_intact()
        if found is None and not ended:
            return None  # nothing to continue: the run starts afresh
        recorded = self.run_dir.config()
        self.run_dir.check_config(self.config, recorded)
        self.recorded_epochs = (recorded or {}).get("trainer", {}).get("epochs")
        result = (self.run_dir.result() or {}) if ended else {}
        finished = found[0]["epoch"] if found else result.get("epochs", 0)
        if self.epochs < finished:
            raise ConfigError(
                f"{self.run_dir.uri} has finished {finished} epochs; trainer.epochs="
                f"{self.epochs} is fewer. Set trainer.epochs={finished} or more to continue "
                "it, or train into another run directory (name=... or output=...)."
            )
        if ended and (result.get("epochs") == self.epochs or result.get("stopped_early")):
            log.info("run %s is already %s; nothing to train", self.run_dir.uri, status)
            return result
        found = found or self.ckpts.latest_intact()  # a finished run, continued to more epochs
        if found is not None:
            pointer, self.saved = found
            self.saved["path"] = pointer["path"]
            self.run_dir.check_config(self.config, self.saved["config"])
        return None

    def fit(self) -> dict[str, Any]:
        """Data, resume, the epoch loop and the test of the best checkpoint."""
        self.setup_data()
        self.resume()
        self.start()
        self.stop.training()
        if self._signalled():
            raise Interrupted("stopped by a signal before the first step; nothing new to save")
        while self.state.epoch < self.epochs and not self.state.stopped_early:
            epoch = self.train_epoch()
            self.end_epoch(epoch, self.validate())
        return self.test()

    # -- the phases of fit()
    def setup_data(self) -> None:
        """The loaders (of cached features, where they apply), the schedule, DDP wrapping.

        `net` is what the loop trains: the prepared model, or with cached features its head
        alone. Checkpoints always hold the whole `model`.
        """
        data_cfg = self.cfg.data.copy()
        with open_dict(data_cfg):
            data_cfg.batch_size = self.batch_size
        self.data = build_dataloaders(data_cfg, seed=self.cfg.seed, settings=self.settings)
        net = self.model
        if self.features:
            self.data = feature_loaders(self.model, self.data, self.accelerator, self.cfg.seed)
            net = self.model.head
        self.train_dl, self.val_dl, self.test_dl = self.accelerator.prepare(
            self.data.train, self.data.val, self.data.test
        )
        self.steps_per_epoch = math.ceil(len(self.train_dl) / self.cfg.trainer.grad_accum_steps)
        self.scheduler = build_scheduler(
            self.cfg.scheduler, self.optimizer, self.steps_per_epoch, self.epochs
        )
        self.net, self.optimizer = self.accelerator.prepare(net, self.optimizer)
        # Of the whole model, on its device; with cached features only its head changes.
        self.ema = build_ema(self.cfg.trainer, self.model)
        if self.cfg.trainer.compile:
            self.net.compile()  # in place: the state dict keeps its keys

    def resume(self) -> None:
        """Load the checkpoint that check_run_dir found: weights, optimizer, schedule, scaler,
        loop state and every process's random generators."""
        saved, self.saved = self.saved, None
        if saved is None:
            return
        self.accelerator.unwrap_model(self.model).load_state_dict(saved["model"])
        if self.ema is not None:
            self.ema.module.load_state_dict(saved["ema"])
        self.optimizer.load_state_dict(saved["optimizer"])
        resume_scheduler(self.scheduler, saved["scheduler"])
        if self.accelerator.scaler is not None and saved["scaler"] is not None:
            self.accelerator.scaler.load_state_dict(saved["scaler"])
        self.state.load_state_dict(saved["train_state"])
        generators = saved["rng"]  # one entry per process
        if len(generators) == self.accelerator.num_processes:
            set_rng_state(generators[self.accelerator.process_index])
        else:
            log.info(
                "resuming on %d processes, not %d: random generators seeded afresh",
                self.accelerator.num_processes,
                len(generators),
            )
            set_seed(self.cfg.seed + self.state.step, device_specific=True)
        self.state.resumes.append(
            {
                "epoch": self.state.epoch,
                "batches_done": self.state.batches_done,
                "checkpoint": saved["path"],
                "at": now(),
            }
        )
        # Said as the stop lines say it: the epochs finished, or the epoch being trained.
        where = (
            f"in epoch {self.state.epoch + 1}, after {self.state.batches_done} batches"
            if self.state.batches_done
            else f"after epoch {self.state.epoch}"
        )
        log.info("resuming %s from %s (%s)", self.run_dir.uri, saved["path"], where)

    def start(self) -> None:
        """Say what is trained; record this attempt's config, metrics so far and result.json."""
        for line in describe_run(
            self.cfg,
            self.parameters,
            self._devices(),
            self.batch_size,
            self.steps_per_epoch,
            self.run_dir.uri,
            self._resume_summary(),
        ):
            log.info(line)
        if not self.main:
            return
        self.tracker = Tracker(
            self.run_dir.storage, self.cfg.logger, self.config, resumed_step=self.state.step
        )
        self.run_dir.write_config(self.config)
        self.run_dir.write_metrics(self.state.history)
        # A fresh result.json per attempt: what earlier attempts did lives in "resumes".
        self.run_dir.start(
            {
                "name": self.cfg.name,
                "run_dir": self.run_dir.uri,
                "classes": self.data.classes,
                "data_split": self.data.split,
                "skipped_images": self.data.skipped_images(),
                "epochs_planned": self.epochs,
                "cached_features": self.features,
                "evaluated_weights": self._evaluated_weights(),
                "parameters": self.parameters,
                "versions": versions(),
                "resumes": self.state.resumes,
                "started_at": now(),
                "devices": self._devices(),
            }
        )

    def train_epoch(self) -> _Epoch:
        """Train one epoch (its rest, after a mid-epoch resume); a stop signal checkpoints
        and raises Interrupted between optimizer steps."""
        state, epoch = self.state, self.state.epoch
        self.unfreeze(epoch)
        self.train_dl.set_epoch(epoch)
        skip = state.batches_done
        batches = (
            self.accelerator.skip_first_batches(self.train_dl, skip) if skip else self.train_dl
        )
        # After a mid-epoch resume the main process carries the epoch's earlier (global) sums.
        resumed = state.train_sums if self.main else [0.0, 0.0, 0.0]
        sums = torch.tensor(resumed, device=self.accelerator.device)
        record = _Epoch(sums, 0.0, state.train_sums[2], state.skipped_steps, state.nonfinite_steps)
        self.net.train()
        epoch_start = time.perf_counter()
        progress = Progress(
            batches,
            total=len(self.train_dl) - skip,
            desc=f"epoch {epoch + 1}/{self.epochs}",
            every=self.cfg.trainer.log_every_n_steps,
            enabled=self.main,
        )
        nonfinite = False  # a micro-batch of this optimizer step had a non-finite loss
        for i, (images, labels) in enumerate(progress, start=skip + 1):
            loss, correct = self._train_step(images, labels)
            loss_value = loss.item()
            if math.isfinite(loss_value):  # a non-finite batch stays out of the epoch's means
                n = labels.numel()
                sums += torch.stack([loss.detach() * n, correct, sums.new_tensor(n)])
            else:
                nonfinite = True
            progress.set(loss=loss_value, lr=self.scheduler.get_last_lr()[0])
            if not self.accelerator.sync_gradients:
                continue
            stop_now = self._count_step(nonfinite)
            if self.main and state.step % self.cfg.trainer.log_every_n_steps == 0:
                lr = self.scheduler.get_last_lr()[0]
                step_values = {"train_loss_step": loss_value, "lr_step": lr}
                self.tracker.log_step(step_values, state.step, epoch + 1)
            if stop_now and i < len(self.train_dl):
                self._interrupt_mid_epoch(i, sums)
            nonfinite = False
        record.seconds = time.perf_counter() - epoch_start
        return record

    def validate(self) -> Evaluation:
        """The validation metrics; weights whose loss is not finite end the run unsaved."""
        val = evaluate(self._scored(), self.val_dl, self.accelerator, self.cfg.data.num_classes)
        if not math.isfinite(val.loss):  # broken weights never reach a checkpoint
            raise self._diverged(f"the validation loss is {val.loss}")
        return val

    def end_epoch(self, epoch: _Epoch, val: Evaluation) -> None:
        """Record the epoch, let the callbacks decide, checkpoint, log; stop after a signal."""
        loss_sum, correct, count = self.accelerator.reduce(epoch.sums, reduction="sum").tolist()
        if not count:
            raise self._diverged("no batch of the epoch had a finite training loss")
        improved = self.state.end_epoch(val.accuracy)
        row = {
            "epoch": self.state.epoch,
            "step": self.state.step,
            "train_loss": loss_sum / count,
            "train_accuracy": correct / count,
            "val_loss": val.loss,
            "val_accuracy": val.accuracy,
            **({"val_top5_accuracy": val.top5_accuracy} if val.top5_accuracy is not None else {}),
            "lr": self.scheduler.get_last_lr()[0],
            "epoch_time": epoch.seconds,
            "images_per_sec": (count - epoch.resumed_count) / epoch.seconds,
            "skipped_steps": self.state.skipped_steps,
            "nonfinite_steps": self.state.nonfinite_steps,
        }
        self.state.history.append(row)
        self._ask_callbacks(row)
        self.save_checkpoint(is_best=improved)
        if self.main:
            self._publish_epoch(row, epoch)
        if self.state.stopped_early:
            log.info("%s", self.state.stop_reason)
        if self._signalled() and self.state.epoch < self.epochs:
            raise Interrupted(
                f"stopped by a signal after epoch {self.state.epoch}; checkpoint saved"
            )

    def test(self) -> dict[str, Any]:
        """Test the best checkpoint (its moving average of the weights where trainer.ema_decay
        is set), with trainer.tta; result.json gets the final status and figures."""
        best = self.ckpts.best_intact()
        self.accelerator.unwrap_model(self.model).load_state_dict(best["model"])
        if self.ema is not None:
            self.ema.module.load_state_dict(best["ema"])
        test = evaluate(
            self._scored(),
            self.test_dl,
            self.accelerator,
            self.cfg.data.num_classes,
            tta=self.cfg.trainer.tta,
        )
        state = self.state
        status = Status(state.stop_status) if state.stop_status else Status.DONE
        result = {
            "epochs": state.epoch,
            "stopped_early": state.stopped_early,
            "stop_reason": state.stop_reason,
            "best_epoch": state.best_epoch,
            "best_val_accuracy": state.best_val_accuracy,
            "final": state.history[-1] if state.history else None,
            "test": {
                "loss": test.loss,
                "accuracy": test.accuracy,
                "top5_accuracy": test.top5_accuracy,
                "tta": self.cfg.trainer.tta,
                "weights": self._evaluated_weights(),
                "per_class_accuracy": test.per_class_accuracy(self.data.classes),
                "confusion_matrix": test.confusion,
            },
            "skipped_steps": state.skipped_steps,
            "nonfinite_steps": state.nonfinite_steps,
            "train_seconds": sum(row["epoch_time"] for row in state.history),
            "wall_seconds_last_attempt": time.perf_counter() - self.started,
            "finished_at": now(),
        }
        if self.main:
            self.run_dir.mark(status, **result, skipped_images=self.data.skipped_images())
            best = self.ckpts.best()
            self.tracker.finish(
                result, self.data.classes, f"{CHECKPOINTS}/{best['path']}" if best else None
            )
            log.info(
                "%s: best val_acc=%.4f (epoch %s), test_acc=%.4f -> %s",
                status,
                state.best_val_accuracy,
                state.best_epoch,
                test.accuracy,
                self.run_dir.uri,
            )
        self.accelerator.wait_for_everyone()
        return self.run_dir.result()

    def save_checkpoint(self, is_best: bool) -> None:
        """Checkpoint the whole model, optimizer, schedule, scaler, loop state and the random
        generators of every process (collected here, written by the main process)."""
        generators = gather_object([rng_state()])  # every process's, by process index
        if self.main:
            self.lease.check()  # a process taken for dead writes nothing
            scaler = self.accelerator.scaler
            self.ckpts.save(
                {
                    "model": self.accelerator.unwrap_model(self.model).state_dict(),
                    "ema": self.ema.module.state_dict() if self.ema is not None else None,
                    "optimizer": self.optimizer.state_dict(),
                    "scheduler": self.scheduler.state_dict(),
                    "scaler": scaler.state_dict() if scaler else None,
                    "rng": generators,
                    "train_state": self.state.state_dict(),
                    "epoch": self.state.epoch,
                    "config": self.config,
                    "classes": self.data.classes,
                },
                step=self.state.step,
                is_best=is_best,
            )
        self.accelerator.wait_for_everyone()

    # -- the pieces of an epoch
    def unfreeze(self, epoch: int) -> None:
        """Make trainable what model.unfreeze_schedule trains in `epoch` (0-based). Every
        parameter it will ever train is in the optimizer from the start, so only DDP's
        wrapper, which reduces the gradients of the parameters trainable when it was built,
        is rebuilt when the set changes."""
        model = self.accelerator.unwrap_model(self.net)
        if not (isinstance(model, FineTuneModel) and model.set_epoch(epoch)):
            return
        log.info(
            "epoch %d: %s parameters trainable (model.unfreeze_schedule)",
            epoch + 1,
            f"{model.trainable_parameters(epoch):,}",
        )
        if isinstance(self.net, DistributedDataParallel):
            on_gpu = self.accelerator.device.type == "cuda"
            self.net = DistributedDataParallel(
                model, device_ids=[self.accelerator.local_process_index] if on_gpu else None
            )
            if self.cfg.trainer.compile:
                self.net.compile()

    def _train_step(
        self, images: torch.Tensor, labels: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Forward and backward of one micro-batch, and the optimizer step where it is due;
        its loss and how many of its predictions are right (inat.train.mixing says how,
        under mixup and CutMix)."""
        accelerator, clip = self.accelerator, self.cfg.trainer.grad_clip_norm
        with accelerator.accumulate(self.net):
            # e.g. uint8 -> normalized, augmented float batches, on the device; then mixed
            images, targets = self.mixing(self.data.train_transform(images), labels)
            logits = self.net(images)
            loss = self.mixing.loss(logits.float(), targets)
            accelerator.backward(loss)
            if accelerator.sync_gradients and clip:
                accelerator.clip_grad_norm_(self.net.parameters(), clip)
            self.optimizer.step()
            if accelerator.sync_gradients:
                if accelerator.optimizer_step_was_skipped:
                    self.state.skipped_steps += 1
                else:
                    self.scheduler.step()
                    if self.ema is not None:
                        self.ema.update(self.model, step=self.state.step + 1)
            self.optimizer.zero_grad(set_to_none=True)
        return loss, self.mixing.correct(logits, targets)

    def _count_step(self, nonfinite: bool) -> bool:
        """Count an optimizer step and its non-finite loss over all processes; returns
        whether any process got a stop signal. Too many bad steps in a row end the run."""
        # One reduce of both flags per step: cheaper than a trigger and a reduce.
        stop_now, nonfinite = _any_process(self.accelerator, bool(self.stop), nonfinite)
        self.state.step += 1
        if not nonfinite:
            self.nonfinite_streak = 0
            return stop_now
        self.state.nonfinite_steps += 1
        self.nonfinite_streak += 1
        if self.nonfinite_streak >= self.cfg.trainer.max_nonfinite_steps:
            raise self._diverged(
                f"the training loss was not finite for {self.nonfinite_streak} optimizer "
                "steps in a row"
            )
        return stop_now

    def _interrupt_mid_epoch(self, batches_done: int, sums: torch.Tensor) -> None:
        """Checkpoint the position inside the epoch and raise Interrupted."""
        self.state.batches_done = batches_done
        self.state.train_sums = self.accelerator.reduce(sums, "sum").tolist()
        self.save_checkpoint(is_best=False)
        raise Interrupted(f"stopped by a signal in epoch {self.state.epoch + 1}; checkpoint saved")

    def _ask_callbacks(self, row: dict[str, Any]) -> None:
        """Run the callbacks on the main process; if one stops the run, every process stops."""
        decision: StopRun | None = None
        if self.main:
            decisions = (callback.on_epoch_end(row, self.state) for callback in self.callbacks)
            decision = next((d for d in decisions if d is not None), None)
            if decision is not None:
                self.accelerator.set_trigger()
        if not self.accelerator.check_trigger():
            return
        decision = broadcast_object_list([decision])[0]
        self.state.stopped_early = True
        self.state.stop_status, self.state.stop_reason = decision.status.value, decision.reason

    def _publish_epoch(self, row: dict[str, Any], epoch: _Epoch) -> None:
        """metrics.jsonl and the trackers, result.json's heartbeat, the log lines, train.log."""
        _log_nonfinite_steps(
            row["epoch"],
            self.state.skipped_steps - epoch.skipped_before,
            self.state.nonfinite_steps - epoch.nonfinite_before,
            self.accelerator,
        )
        self.tracker.log_epoch(self.state.history)
        self.run_dir.mark(  # updated_at shows it is alive
            Status.RUNNING, epochs=self.state.epoch, skipped_images=self.data.skipped_images()
        )
        log.info(
            "epoch %d/%d train_loss=%.4f train_acc=%.4f val_loss=%.4f val_acc=%.4f "
            "(%.1fs, %.0f img/s)",
            row["epoch"],
            self.epochs,
            row["train_loss"],
            row["train_accuracy"],
            row["val_loss"],
            row["val_accuracy"],
            row["epoch_time"],
            row["images_per_sec"],
        )
        self.runlog.flush()

    # -- helpers
    def _scored(self) -> nn.Module | Callable[[torch.Tensor], torch.Tensor]:
        """What validation and the test score: the trained net, or the moving average of its
        weights (in the net's precision) where trainer.ema_decay is set."""
        if self.ema is None:
            return self.net
        average = self.ema.module.head if self.features else self.ema.module
        average.eval()

        def forward(images: torch.Tensor) -> torch.Tensor:
            with self.accelerator.autocast():
                return average(images)

        return forward

    def _evaluated_weights(self) -> str:
        """result.json's word for the weights validated and tested: "ema" or "model"."""
        return "model" if self.ema is None else "ema"

    def _signalled(self) -> bool:
        """Whether any process got a stop signal (all processes call this together)."""
        if self.stop:
            self.accelerator.set_trigger()
        return self.accelerator.check_trigger()

    def _devices(self) -> dict[str, Any]:
        return {
            "device": str(self.accelerator.device),
            "num_processes": self.accelerator.num_processes,
            "mixed_precision": self.cfg.trainer.mixed_precision,
        }

    def _resume_summary(self) -> str:
        """The log block's resume line."""
        if not self.state.resumes:
            return "no: a new run"
        last = self.state.resumes[-1]
        text = f"yes, from checkpoint {last['checkpoint']} after epoch {last['epoch']}"
        if last["batches_done"]:
            text += f" and {last['batches_done']} batches of epoch {last['epoch'] + 1}"
        if self.recorded_epochs not in (None, self.epochs):
            text += (
                f"; trainer.epochs {self.recorded_epochs} -> {self.epochs}: the LR schedule "
                f"is rebuilt for {self.epochs} epochs from step {self.state.step}"
            )
        return text

    def _diverged(self, what: str) -> InatError:
        """The error that ends a run whose loss or weights are no longer finite."""
        return InatError(
            f"{what} (epoch {self.state.epoch + 1}, step {self.state.step}; "
            f"{self.state.skipped_steps} steps skipped for fp16 overflow so far): the run "
            "diverged. Train again into another run directory (name=...) with a lower "
            "optimizer.lr, trainer.grad_clip_norm set, or bf16; the last good checkpoint is kept."
        )

    def _note(self, level: int, message: str) -> None:
        if self.runlog is not None:
            self.runlog.note(level, message)

    def _record_failure(self, e: Exception) -> None:
        """Mark the run failed, or interrupted when a retry resumes it (a stop signal, storage
        unreachable past its retry budget); unless the storage itself is what failed."""
        status = (
            Status.INTERRUPTED if isinstance(e, Interrupted | TransientError) else Status.FAILED
        )
        error = f"{type(e).__name__}: {e}"
        self._note(logging.WARNING if status is Status.INTERRUPTED else logging.ERROR, error)
        if not self.main:
            return
        if self.tracker is not None:
            try:  # a tracker that cannot be closed must not hide why the attempt ended
                self.tracker.abort(interrupted=status is Status.INTERRUPTED)
            except Exception as failure:
                log.warning("could not close the trackers: %s", failure)
        try:
            self.run_dir.mark(status, error=error)
        except (InatError, OSError) as failure:
            log.warning("could not record the run's status in %s: %s", self.run_dir.uri, failure)


def per_process_batch(cfg: DictConfig, accelerator: Accelerator) -> int:
    """data.batch_size is the whole optimizer step; split it over processes and micro-batches."""
    parts = accelerator.num_processes * cfg.trainer.grad_accum_steps
    if cfg.data.batch_size % parts:
        raise ConfigError(
            f"data.batch_size={cfg.data.batch_size} must divide by processes x "
            f"trainer.grad_accum_steps = {accelerator.num_processes} x "
            f"{cfg.trainer.grad_accum_steps}; choose a multiple of {parts}."
        )
    return cfg.data.batch_size // parts


def _any_process(accelerator: Accelerator, *flags: bool) -> list[bool]:
    """Each flag ORed over all processes, so that all of them act on it together."""
    if accelerator.num_processes == 1:
        return list(flags)
    counts = torch.tensor([float(flag) for flag in flags], device=accelerator.device)
    return [count > 0 for count in accelerator.reduce(counts, reduction="sum").tolist()]


def _log_nonfinite_steps(
    epoch: int, skipped: int, nonfinite: int, accelerator: Accelerator
) -> None:
    """Log the epoch's optimizer steps skipped for fp16 overflow and those with a bad loss."""
    if not (skipped or nonfinite):
        return
    scale = f"{accelerator.scaler.get_scale():g}" if accelerator.scaler else "none"
    # A few skipped steps are how the scaler finds its scale; a bad loss is worth a warning.
    log.log(
        logging.WARNING if nonfinite else logging.INFO,
        "epoch %d: fp16 overflow skipped %d optimizer step(s) (loss scale now %s); %d step(s) "
        "had a loss that was not finite (left out of the epoch's metrics)",
        epoch,
        skipped,
        scale,
        nonfinite,
    )
