"""The training loop: a composed config in, a finished run directory out.

    inat train                                                # one process: the CPU or one GPU
    inat launch --multi_gpu --num_processes 4 train ...       # DDP on 4 GPUs of one node
    inat launch --multi_gpu --num_processes 2 train trainer.cpu=true    # DDP on the CPU

Phases, in order: checks; accelerator; run directory; model and optimizer (bad
values fail here, before any data is read); data; resume; the epoch loop; the
test of the best checkpoint; result.json. Only the main process writes.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any

import torch
from accelerate import Accelerator, DataLoaderConfiguration
from accelerate.state import AcceleratorState
from accelerate.utils import gather_object, set_seed
from omegaconf import DictConfig, OmegaConf, open_dict

from inat import rundir
from inat.config import validate
from inat.data import build_dataloaders, check_source
from inat.errors import ConfigError, InatError, Interrupted
from inat.models import build_model
from inat.progress import Progress
from inat.rundir import now
from inat.secrets import redact
from inat.storage import Storage, configure, open_storage
from inat.train.checkpoint import CheckpointManager, rng_state, set_rng_state
from inat.train.features import feature_loaders, use_cached_features
from inat.train.optim import build_optimizer, build_scheduler
from inat.train.scoring import evaluate
from inat.train.signals import StopRequest
from inat.train.tracker import Tracker
from inat.train.versions import versions

log = logging.getLogger(__name__)


def train(cfg: DictConfig) -> dict[str, Any]:
    """Train the run `cfg.run_dir` to its end, resuming from its latest checkpoint.

    Returns the content of result.json. Raises InatError subclasses whose
    `exit_code` says whether a retry can help.
    """
    # -- checks: every config value, then what they build, before anything is read or written
    validate(cfg)
    configure(cfg.storage)
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
    main = accelerator.is_main_process
    if not main:
        logging.getLogger("inat").setLevel(logging.WARNING)
    try:
        batch_size = _per_process_batch(cfg, accelerator)
        # Each process draws its own augmentations and dropout masks (seed + process index);
        # DDP starts every process from process 0's initial weights.
        set_seed(cfg.seed, device_specific=True)
        model = build_model(cfg.model, cfg.data.num_classes, cfg.data.image_size)
        if cfg.trainer.channels_last:
            # NHWC convolutions: faster on tensor cores and with oneDNN on the CPU.
            model = model.to(memory_format=torch.channels_last)
        optimizer = build_optimizer(cfg.optimizer, model.param_groups())
        features = use_cached_features(cfg.trainer.cache_features, model, cfg.data.augment)

        # -- preflight: the data can be read, the run directory written (and is not done)
        check_source(cfg.data.source)
        run = open_storage(cfg.run_dir)
        if main:
            run.check_writable()
        if run.exists(rundir.RESULT) and run.read_json(rundir.RESULT).get("status") == "done":
            log.info("run %s is already done; nothing to train", run.uri)
            return run.read_json(rundir.RESULT)
        try:
            return _fit(cfg, accelerator, run, model, optimizer, batch_size, features)
        except Exception as e:
            if main:
                status = "interrupted" if isinstance(e, Interrupted) else "failed"
                _record_failure(run, status, f"{type(e).__name__}: {e}")
            raise
    finally:
        # One accelerator state per process; a multirun starts its next point afresh.
        AcceleratorState._reset_state(reset_partial_state=True)


def _mark(run: Storage, status: str, **fields: Any) -> None:
    """Update result.json's status, keeping what this attempt recorded."""
    result = run.read_json(rundir.RESULT) if run.exists(rundir.RESULT) else {}
    run.write_json(rundir.RESULT, {**result, "status": status, "updated_at": now(), **fields})


def _record_failure(run: Storage, status: str, error: str) -> None:
    """Mark the run failed or interrupted, unless the storage itself is what failed."""
    try:
        _mark(run, status, error=error)
    except (InatError, OSError) as e:
        log.warning("could not record the run's status in %s: %s", run.uri, e)


def _per_process_batch(cfg: DictConfig, accelerator: Accelerator) -> int:
    """data.batch_size is the whole optimizer step; split it over processes and micro-batches."""
    parts = accelerator.num_processes * cfg.trainer.grad_accum_steps
    if cfg.data.batch_size % parts:
        raise ConfigError(
            f"data.batch_size={cfg.data.batch_size} must divide by processes x "
            f"trainer.grad_accum_steps = {accelerator.num_processes} x "
            f"{cfg.trainer.grad_accum_steps}; choose a multiple of {parts}."
        )
    return cfg.data.batch_size // parts


# What a checkpoint's weights depend on: resuming with other values cannot load them.
_ARCHITECTURE_KEYS = ("model", "data.image_size", "data.num_classes")


def _check_same_architecture(saved: dict[str, Any], current: dict[str, Any], uri: str) -> None:
    """Raise ConfigError naming the keys whose values differ from the checkpoint's config."""

    def value(config: dict[str, Any], key: str) -> Any:
        for part in key.split("."):
            config = config.get(part, {})
        return config

    changed = [key for key in _ARCHITECTURE_KEYS if value(saved, key) != value(current, key)]
    if changed:
        diffs = "; ".join(f"{k}: {value(saved, k)} -> {value(current, k)}" for k in changed)
        raise ConfigError(
            f"{uri} holds a checkpoint of another model ({diffs}). Resume with the config "
            "it was started with, or train into another run_dir (name=... or output=...)."
        )


def _any_process(accelerator: Accelerator, *flags: bool) -> list[bool]:
    """Each flag ORed over all processes, so that all of them act on it together."""
    if accelerator.num_processes == 1:
        return list(flags)
    counts = torch.tensor([float(flag) for flag in flags], device=accelerator.device)
    return [count > 0 for count in accelerator.reduce(counts, reduction="sum").tolist()]


def _diverged(what: str, state: dict[str, Any]) -> InatError:
    """The error that ends a run whose loss or weights are no longer finite."""
    return InatError(
        f"{what} (epoch {state['epoch'] + 1}, step {state['step']}; {state['skipped_steps']} "
        "steps skipped for fp16 overflow so far): the run diverged. Lower optimizer.lr, set "
        "trainer.grad_clip_norm, or use bf16; the last good checkpoint is kept."
    )


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


def _fit(
    cfg: DictConfig,
    accelerator: Accelerator,
    run: Storage,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    batch_size: int,
    features: bool,
) -> dict[str, Any]:
    """Data, resume, the epoch loop and the test of the best checkpoint.

    `net` is what the loop trains: the prepared `model`, or with `features` (see
    inat.train.features) its head alone. Checkpoints always hold the whole `model`.
    """
    main = accelerator.is_main_process
    started = time.perf_counter()
    config = redact(OmegaConf.to_container(cfg, resolve=True))

    # -- data
    data_cfg = cfg.data.copy()
    with open_dict(data_cfg):
        data_cfg.batch_size = batch_size
    data = build_dataloaders(data_cfg, seed=cfg.seed)
    net = model
    if features:
        data = feature_loaders(model, data, accelerator, cfg.seed)
        net = model.head
    train_dl, val_dl, test_dl = accelerator.prepare(data.train, data.val, data.test)
    epochs = cfg.trainer.epochs
    steps_per_epoch = math.ceil(len(train_dl) / cfg.trainer.grad_accum_steps)
    scheduler = build_scheduler(cfg.scheduler, optimizer, steps_per_epoch, epochs)
    net, optimizer = accelerator.prepare(net, optimizer)
    if cfg.trainer.compile:
        net.compile()  # in place: the state dict keeps its keys

    # -- resume from the latest checkpoint, or start
    ckpts = CheckpointManager(run.child(rundir.CHECKPOINTS), keep=cfg.trainer.keep_checkpoints)
    pointer = ckpts.latest()
    state: dict[str, Any] = {
        "epoch": 0,  # epochs finished
        "batches_done": 0,  # micro-batches of the unfinished epoch (after a stop signal)
        "train_sums": [0.0, 0.0, 0.0],  # loss x samples, correct, samples of that epoch
        "step": 0,  # optimizer steps
        "best_val_accuracy": -1.0,
        "best_epoch": None,
        "epochs_since_best": 0,
        "stopped_early": False,
        "skipped_steps": 0,  # optimizer steps the fp16 loss scaler skipped (inf/NaN gradients)
        "nonfinite_steps": 0,  # optimizer steps with a loss that was not finite
        "history": [],
        "resumes": [],
    }
    if pointer is not None:
        saved = ckpts.load(pointer)
        _check_same_architecture(saved["config"], config, run.uri)
        accelerator.unwrap_model(model).load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        if accelerator.scaler is not None and saved["scaler"] is not None:
            accelerator.scaler.load_state_dict(saved["scaler"])
        state.update(saved["train_state"])
        generators = saved["rng"]  # one entry per process
        if len(generators) == accelerator.num_processes:
            set_rng_state(generators[accelerator.process_index])
        else:
            log.info(
                "resuming on %d processes, not %d: random generators seeded afresh",
                accelerator.num_processes,
                len(generators),
            )
            set_seed(cfg.seed + state["step"], device_specific=True)
        state["resumes"].append(
            {"epoch": state["epoch"], "batches_done": state["batches_done"], "at": now()}
        )
        log.info("resuming %s from %s (epoch %d)", run.uri, pointer["path"], state["epoch"])

    def save_checkpoint(is_best: bool) -> None:
        generators = gather_object([rng_state()])  # every process's, by process index
        if main:
            ckpts.save(
                {
                    "model": accelerator.unwrap_model(model).state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "scaler": accelerator.scaler.state_dict() if accelerator.scaler else None,
                    "rng": generators,
                    "train_state": state,
                    "epoch": state["epoch"],
                    "config": config,
                    "classes": data.classes,
                },
                step=state["step"],
                is_best=is_best,
            )
        accelerator.wait_for_everyone()

    tracker = None
    if main:
        tracker = Tracker(run, cfg.get("logger"), config)
        run.write_text(rundir.CONFIG, OmegaConf.to_yaml(config))
        rundir.RunDir(run).write_metrics(state["history"])
        # A fresh result.json per attempt: what earlier attempts did lives in "resumes".
        run.write_json(
            rundir.RESULT,
            {
                "status": "running",
                "updated_at": now(),
                "name": cfg.name,
                "run_dir": run.uri,
                "classes": data.classes,
                "skipped_images": data.skipped,
                "epochs_planned": epochs,
                "cached_features": features,
                "versions": versions(),
                "resumes": state["resumes"],
                "started_at": now(),
                "devices": {
                    "device": str(accelerator.device),
                    "num_processes": accelerator.num_processes,
                    "mixed_precision": cfg.trainer.mixed_precision,
                },
            },
        )

    # -- the epoch loop
    criterion = torch.nn.CrossEntropyLoss(label_smoothing=cfg.trainer.label_smoothing)
    num_classes = cfg.data.num_classes
    nonfinite_streak = 0  # optimizer steps in a row whose loss was not finite
    with StopRequest() as stop:
        while state["epoch"] < epochs and not state["stopped_early"]:
            epoch = state["epoch"]
            train_dl.set_epoch(epoch)
            skip = state["batches_done"]
            batches = accelerator.skip_first_batches(train_dl, skip) if skip else train_dl
            # After a mid-epoch resume the main process carries the epoch's earlier (global) sums.
            resumed = state["train_sums"] if main else [0.0, 0.0, 0.0]
            sums = torch.tensor(resumed, device=accelerator.device)
            resumed_count = state["train_sums"][2]
            skipped_before, nonfinite_before = state["skipped_steps"], state["nonfinite_steps"]
            net.train()
            epoch_start = time.perf_counter()
            progress = Progress(
                batches,
                total=len(train_dl) - skip,
                desc=f"epoch {epoch + 1}/{epochs}",
                every=cfg.trainer.log_every_n_steps,
                enabled=main,
            )
            nonfinite = False  # a micro-batch of this optimizer step had a non-finite loss
            for i, (images, labels) in enumerate(progress, start=skip + 1):
                with accelerator.accumulate(net):
                    # e.g. uint8 -> normalized, augmented float batches, on the device
                    logits = net(data.train_transform(images))
                    loss = criterion(logits.float(), labels)
                    accelerator.backward(loss)
                    if accelerator.sync_gradients and cfg.trainer.grad_clip_norm:
                        accelerator.clip_grad_norm_(net.parameters(), cfg.trainer.grad_clip_norm)
                    optimizer.step()
                    if accelerator.sync_gradients:
                        if accelerator.optimizer_step_was_skipped:
                            state["skipped_steps"] += 1
                        else:
                            scheduler.step()
                    optimizer.zero_grad(set_to_none=True)
                loss_value = loss.item()
                if math.isfinite(loss_value):  # a non-finite batch stays out of the epoch's means
                    n = labels.numel()
                    sums += torch.stack(
                        [loss.detach() * n, (logits.argmax(1) == labels).sum(), sums.new_tensor(n)]
                    )
                else:
                    nonfinite = True
                progress.set(loss=loss_value, lr=scheduler.get_last_lr()[0])
                if not accelerator.sync_gradients:
                    continue
                state["step"] += 1
                stop_now, nonfinite = _any_process(accelerator, bool(stop), nonfinite)
                if nonfinite:
                    state["nonfinite_steps"] += 1
                    nonfinite_streak += 1
                    if nonfinite_streak >= cfg.trainer.max_nonfinite_steps:
                        raise _diverged(
                            f"the training loss was not finite for {nonfinite_streak} "
                            "optimizer steps in a row",
                            state,
                        )
                else:
                    nonfinite_streak = 0
                nonfinite = False
                if stop_now and i < len(train_dl):
                    state.update(
                        batches_done=i, train_sums=accelerator.reduce(sums, "sum").tolist()
                    )
                    save_checkpoint(is_best=False)
                    raise Interrupted(f"stopped by a signal in epoch {epoch + 1}; checkpoint saved")

            # end of an epoch: reduce, validate, checkpoint, log
            loss_sum, correct, count = accelerator.reduce(sums, reduction="sum").tolist()
            epoch_time = time.perf_counter() - epoch_start
            if not count:
                raise _diverged("no batch of the epoch had a finite training loss", state)
            train_loss = loss_sum / count
            val = evaluate(net, val_dl, accelerator, num_classes)
            if not math.isfinite(val.loss):  # broken weights never reach a checkpoint
                raise _diverged(f"the validation loss is {val.loss}", state)
            improved = val.accuracy > state["best_val_accuracy"]
            state.update(
                epoch=epoch + 1,
                batches_done=0,
                train_sums=[0.0, 0.0, 0.0],
            )
            if improved:
                state.update(
                    best_val_accuracy=val.accuracy, best_epoch=epoch + 1, epochs_since_best=0
                )
            else:
                state["epochs_since_best"] += 1
            patience = cfg.trainer.early_stopping_patience
            state["stopped_early"] = bool(patience and state["epochs_since_best"] >= patience)
            row = {
                "epoch": epoch + 1,
                "step": state["step"],
                "train_loss": train_loss,
                "train_accuracy": correct / count,
                "val_loss": val.loss,
                "val_accuracy": val.accuracy,
                "lr": scheduler.get_last_lr()[0],
                "epoch_time": epoch_time,
                "images_per_sec": (count - resumed_count) / epoch_time,
                "skipped_steps": state["skipped_steps"],
                "nonfinite_steps": state["nonfinite_steps"],
            }
            state["history"].append(row)
            save_checkpoint(is_best=improved)
            if main:
                _log_nonfinite_steps(
                    epoch + 1,
                    state["skipped_steps"] - skipped_before,
                    state["nonfinite_steps"] - nonfinite_before,
                    accelerator,
                )
                tracker.log_epoch(state["history"])
                _mark(run, "running", epochs=state["epoch"])  # updated_at shows it is alive
                log.info(
                    "epoch %d/%d train_loss=%.4f train_acc=%.4f val_loss=%.4f val_acc=%.4f "
                    "(%.1fs, %.0f img/s)",
                    epoch + 1,
                    epochs,
                    train_loss,
                    row["train_accuracy"],
                    val.loss,
                    val.accuracy,
                    epoch_time,
                    row["images_per_sec"],
                )
            if state["stopped_early"]:
                log.info("early stop: no better validation accuracy for %d epochs", patience)
            if _any_process(accelerator, bool(stop))[0] and state["epoch"] < epochs:
                raise Interrupted(f"stopped by a signal after epoch {epoch + 1}; checkpoint saved")

    # -- test the best checkpoint
    best = ckpts.load(ckpts.best())
    accelerator.unwrap_model(model).load_state_dict(best["model"])
    test = evaluate(net, test_dl, accelerator, num_classes)
    result = {
        "epochs": state["epoch"],
        "stopped_early": state["stopped_early"],
        "best_epoch": state["best_epoch"],
        "best_val_accuracy": state["best_val_accuracy"],
        "final": state["history"][-1] if state["history"] else None,
        "test": {
            "loss": test.loss,
            "accuracy": test.accuracy,
            "per_class_accuracy": test.per_class_accuracy(data.classes),
            "confusion_matrix": test.confusion,
        },
        "skipped_steps": state["skipped_steps"],
        "nonfinite_steps": state["nonfinite_steps"],
        "train_seconds": sum(row["epoch_time"] for row in state["history"]),
        "wall_seconds_last_attempt": time.perf_counter() - started,
        "finished_at": now(),
    }
    if main:
        _mark(run, "done", **result)
        tracker.finish(
            {"test_accuracy": test.accuracy, "best_val_accuracy": state["best_val_accuracy"]},
            exit_code=0,
        )
        log.info(
            "done: best val_acc=%.4f (epoch %s), test_acc=%.4f -> %s",
            state["best_val_accuracy"],
            state["best_epoch"],
            test.accuracy,
            run.uri,
        )
    accelerator.wait_for_everyone()
    return run.read_json(rundir.RESULT)
