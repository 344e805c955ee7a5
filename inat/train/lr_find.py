"""The learning-rate range test of `inat lr-find` (Leslie Smith's; fastai's lr_find).

    result = lr_find(compose(["model=finetune"]), start=1e-7, end=10, steps=100)
    result.suggestion                      # optimizer.lr to train with
    write_plot(result, "lr-find.png")      # the loss against the learning rate

A throwaway copy of the configured model trains on the configured data, optimizer, batch
size, gradient accumulation, clipping and precision for up to `steps` optimizer steps,
optimizer.lr growing exponentially from `start` to `end`; each param group keeps its
lr_scale. The configured schedule (warmup, decay) is not used: the range replaces it. The
test stops early once the smoothed loss passes DIVERGE times its best. Nothing is written
to a run directory; the data are read as training reads them (the data cache included).

The suggestion (RULE) is the learning rate of the lowest smoothed loss, divided by 10
(fastai's lr_min; Smith: an order of magnitude below the minimum). The minimum is a
landmark that the noise of single batches hardly moves, whereas the steepest descent of
a noisy curve jumps from run to run. The smoothed loss lags the loss, so at its minimum
the loss already rises: a tenth of that learning rate is back where it still falls fast.
The first 10% of the steps are left out of the search, as fastai does: there the
smoothed loss is the mean of too few losses, and a lucky first batch would be the minimum.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from accelerate.utils import set_seed
from matplotlib.figure import Figure
from omegaconf import DictConfig, open_dict
from torch.utils.data import DataLoader

from inat.compose import validate
from inat.data import build_dataloaders
from inat.errors import ConfigError, InatError
from inat.models import build_model
from inat.progress import Progress
from inat.results.plots import save
from inat.storage import LocalStorage, storage_settings
from inat.train.mixing import Mixing
from inat.train.optim import build_optimizer
from inat.train.trainer import per_process_batch

log = logging.getLogger(__name__)

DIVERGE = 4.0  # the test stops once the smoothed loss passes this many times its best
SMOOTHING = 0.05  # each step's weight in the smoothed loss, about 1/20 (torch-lr-finder's)
RULE = (
    "the learning rate of the lowest smoothed loss (the first 10% of the steps left out), "
    "divided by 10"
)


@dataclass(frozen=True)
class LrFindResult:
    """The curve of a range test, why it ended and the learning rate it suggests."""

    name: str  # the config's run name
    start: float
    end: float
    steps: int  # the steps asked for; len(lrs) were run
    lrs: list[float]  # optimizer.lr of each step run (each param group: times its lr_scale)
    losses: list[float]  # the training loss of each step
    smoothed: list[float]
    stopped: str  # why the test ended
    diverged: bool
    lowest: int  # the step (from 0) of the lowest smoothed loss that RULE takes
    suggestion: float | None  # None: the rule's learning rate lies below the range
    why: str  # how the suggestion was found, or why there is none

    @property
    def override(self) -> str | None:
        """The `inat train` override of the suggestion (2 significant digits)."""
        return None if self.suggestion is None else f"optimizer.lr={self.suggestion:.2g}"

    def record(self) -> dict[str, Any]:
        """The result as JSON-ready data, with the rule and the override."""
        return {**asdict(self), "steps_run": len(self.lrs), "rule": RULE, "override": self.override}


@dataclass
class Curve:
    """The losses of a range test so far, smoothed as they come: an exponential moving
    average, divided by the total weight of its terms so that its first steps are means of
    the losses so far (not pulled towards 0)."""

    lrs: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    smoothed: list[float] = field(default_factory=list)
    average: float = 0.0

    def add(self, lr: float, loss: float) -> str | None:
        """Record a step's loss; returns why the test stops here (None: it goes on). A loss
        that is not finite is not recorded."""
        step = len(self.lrs) + 1
        if not math.isfinite(loss):
            return f"diverged at lr {lr:.3g} (step {step}): the loss is {loss}"
        self.average = (1 - SMOOTHING) * self.average + SMOOTHING * loss
        self.lrs.append(lr)
        self.losses.append(loss)
        self.smoothed.append(self.average / (1 - (1 - SMOOTHING) ** step))
        best = min(self.smoothed)
        if self.smoothed[-1] > DIVERGE * best:
            return (
                f"diverged at lr {lr:.3g} (step {step}): the smoothed loss "
                f"{self.smoothed[-1]:.3g} passed {DIVERGE:g}x its best, {best:.3g}"
            )
        return None


def check_range(start: float, end: float, steps: int) -> None:
    """Raise ConfigError unless 0 < start < end (both finite) and steps >= 2."""
    if not (0 < start < end and math.isfinite(end)):
        raise ConfigError(
            f"--start {start:g} --end {end:g}: the range test needs 0 < start < end, both "
            "finite, e.g. --start 1e-7 --end 10"
        )
    if steps < 2:
        raise ConfigError(
            f"--steps {steps}: the range test needs 2 steps or more, e.g. --steps 100"
        )


def check_plot(path: str) -> None:
    """Raise ConfigError unless `path` is a .png file in a folder that exists."""
    if Path(path).suffix != ".png":
        raise ConfigError(f"--plot {path}: the plot is a PNG; give a path ending in .png")
    if not Path(path).parent.is_dir():
        raise ConfigError(
            f"--plot {path}: the folder {Path(path).parent} does not exist; create it or "
            "choose another path"
        )


def range_lrs(start: float, end: float, steps: int) -> list[float]:
    """`steps` learning rates from `start` to `end`, each the same factor above the last."""
    return [start * (end / start) ** (i / (steps - 1)) for i in range(steps)]


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Set each param group's learning rate to `lr` times its lr_scale, as build_optimizer
    sets optimizer.lr."""
    for group in optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)


def lr_find(cfg: DictConfig, start: float, end: float, steps: int) -> LrFindResult:
    """Run the range test on the train config `cfg`, optimizer.lr from `start` to `end` in
    up to `steps` optimizer steps, in this process; ConfigError for bad values."""
    check_range(start, end, steps)
    validate(cfg)
    accelerator = Accelerator(
        cpu=cfg.trainer.cpu,
        mixed_precision=cfg.trainer.mixed_precision,
        gradient_accumulation_steps=cfg.trainer.grad_accum_steps,
    )
    try:
        if accelerator.num_processes > 1:
            raise ConfigError("inat lr-find runs in one process: run it without inat launch")
        curve, stopped = _run(cfg, accelerator, range_lrs(start, end, steps))
    finally:
        # One accelerator state per process; a later test or run starts afresh.
        AcceleratorState._reset_state(reset_partial_state=True)
    if not curve.lrs:
        raise InatError(
            f"{stopped}, at the first step: nothing to suggest. Check the model, the data "
            "and trainer.mixed_precision (bf16 or no) with inat train"
        )
    diverged = stopped is not None
    if stopped is None:
        stopped = f"reached --end {end:g} after {steps} steps without diverging"
    lowest = lowest_step(curve.smoothed, steps)
    suggestion, why = suggest(curve, lowest, start, diverged)
    return LrFindResult(
        name=str(cfg.name),
        start=start,
        end=end,
        steps=steps,
        lrs=curve.lrs,
        losses=curve.losses,
        smoothed=curve.smoothed,
        stopped=stopped,
        diverged=diverged,
        lowest=lowest,
        suggestion=suggestion,
        why=why,
    )


def lowest_step(smoothed: list[float], steps: int) -> int:
    """The step (from 0) of the lowest `smoothed` loss after the first 10% of the `steps`
    asked for; of any step when the test stopped within them."""
    skip = steps // 10 if steps // 10 < len(smoothed) - 1 else 0
    return min(range(skip, len(smoothed)), key=smoothed.__getitem__)


def suggest(curve: Curve, lowest: int, start: float, diverged: bool) -> tuple[float | None, str]:
    """RULE's learning rate, a tenth of that of step `lowest`, or None where it lies below
    `start`; and how it was found."""
    at = curve.lrs[lowest]
    found = f"the smoothed loss is lowest ({curve.smoothed[lowest]:.3g}) at lr {at:.2g}"
    if at / 10 < start:
        return None, (
            f"{found}, less than 10x --start {start:g}: a tenth of it was not tested. Run again "
            f"with a lower --start, e.g. --start {start / 1000:g}"
        )
    why = f"{found}; a tenth of that is {at / 10:.2g}"
    if not diverged and lowest == len(curve.lrs) - 1:
        why += " (the loss still fell at --end: a higher --end may suggest more)"
    return at / 10, why


def _run(cfg: DictConfig, accelerator: Accelerator, lrs: list[float]) -> tuple[Curve, str | None]:
    """Train a fresh model built from `cfg` at each of `lrs` in turn; the curve, and why it
    stopped early (None: it did not)."""
    set_seed(cfg.seed)  # the model starts from the weights a run of `cfg` starts from
    settings = storage_settings(cfg.storage)
    model = build_model(cfg.model, cfg.data.num_classes, cfg.data.image_size, settings)
    if cfg.trainer.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(cfg.optimizer, model.param_groups())
    data_cfg = cfg.data.copy()
    with open_dict(data_cfg):
        data_cfg.batch_size = per_process_batch(cfg, accelerator)
    data = build_dataloaders(data_cfg, seed=cfg.seed, settings=settings)
    net, optimizer = accelerator.prepare(model, optimizer)
    mixing = Mixing(cfg.trainer, cfg.data.num_classes)  # the loss training minimises
    clip = cfg.trainer.grad_clip_norm
    batches = _endless(data.train, accelerator.device)
    log.info(
        "lr-find: up to %d optimizer steps of %s, optimizer.lr from %g to %g, batch size %d on %s",
        len(lrs),
        cfg.name,
        lrs[0],
        lrs[-1],
        cfg.data.batch_size,
        accelerator.device,
    )
    curve = Curve()
    net.train()
    progress = Progress(lrs, total=len(lrs), desc="lr-find", every=max(1, len(lrs) // 10))
    for lr in progress:
        set_lr(optimizer, lr)
        total = 0.0
        for _ in range(accelerator.gradient_accumulation_steps):
            images, labels = next(batches)
            with accelerator.accumulate(net):
                inputs, targets = mixing(data.train_transform(images), labels)
                loss = mixing.loss(net(inputs).float(), targets)
                accelerator.backward(loss)
                if accelerator.sync_gradients and clip:
                    accelerator.clip_grad_norm_(net.parameters(), clip)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            total += loss.item()
        loss_value = total / accelerator.gradient_accumulation_steps
        progress.set(lr=lr, loss=loss_value)
        stopped = curve.add(lr, loss_value)
        if stopped is not None:
            return curve, stopped
    return curve, None


def _endless(
    loader: DataLoader, device: torch.device
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The loader's batches on `device`, epoch after epoch."""
    while True:
        for images, labels in loader:
            yield images.to(device, non_blocking=True), labels.to(device, non_blocking=True)


def plot(result: LrFindResult) -> Figure:
    """The loss against the learning rate (log scale) over the range asked for: each step's
    loss and the smoothed loss, its lowest point, the suggestion and where the test stopped."""
    figure = Figure(figsize=(8, 5), layout="constrained")
    ax = figure.subplots()
    ax.plot(result.lrs, result.losses, color="C0", alpha=0.3, linewidth=1, label="loss")
    ax.plot(result.lrs, result.smoothed, color="C0", linewidth=2, label="smoothed loss")
    lowest = result.lowest
    ax.plot(
        result.lrs[lowest],
        result.smoothed[lowest],
        "o",
        color="black",
        label=f"lowest smoothed loss (lr {result.lrs[lowest]:.2g})",
    )
    if result.suggestion is not None:
        at = np.interp(np.log(result.suggestion), np.log(result.lrs), result.smoothed)
        ax.axvline(result.suggestion, color="C3", linestyle="--")
        ax.plot(result.suggestion, at, "*", color="C3", markersize=14, label=f"{result.override}")
    if result.diverged:
        ax.axvline(
            result.lrs[-1], color="grey", linestyle=":", label=f"diverged (lr {result.lrs[-1]:.2g})"
        )
    ax.set_xscale("log")
    ax.set_xlim(result.start, result.end)
    ax.set_ylim(*_loss_range(result))
    ax.set_xlabel("learning rate: optimizer.lr (log scale)")
    ax.set_ylabel("training loss")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    suggested = result.override or "no suggestion"
    ax.set_title(
        f"Learning-rate range test of {result.name}, {len(result.lrs)} of {result.steps} "
        f"steps: {suggested}\nsuggestion: {RULE}",
        fontsize="medium",
    )
    return figure


def _loss_range(result: LrFindResult) -> tuple[float, float]:
    """The loss axis: the smoothed loss up to the divergence, not the blow-up (nor the
    spikes of single batches, drawn faintly, cut off where they pass it)."""
    limit = DIVERGE * min(result.smoothed)
    low = min(*result.losses, *result.smoothed)
    high = max(s for s in result.smoothed if s <= limit)
    pad = 0.1 * (high - low) or 0.1 * high or 1.0
    return low - pad, high + pad


def write_plot(result: LrFindResult, path: str) -> str:
    """Write the plot of `result` as the PNG `path` (see check_plot); returns its path."""
    target = Path(path).resolve()
    return save(plot(result), LocalStorage(target.parent), target.stem, folder="")


def report(result: LrFindResult, plot_path: str) -> str:
    """The range test for people: how it went, the suggestion, the plot, the override."""
    lines = [
        f"learning-rate range test of {result.name}, optimizer.lr from {result.start:g} to "
        f"{result.end:g} in up to {result.steps} steps: {result.stopped}",
        f"suggestion ({RULE}): {result.why}",
        f"plot: {plot_path}",
    ]
    if result.override is not None:
        lines.append(f"train with the same overrides and {result.override}")
    return "\n".join(lines)
