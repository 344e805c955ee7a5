"""What a run trains, said once at its start: the log block and result.json's `parameters`."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig
from torch import nn

from inat.models.params import count_parameters
from inat.schema import augmentation
from inat.secrets import redact


def parameter_counts(model: nn.Module) -> dict[str, Any]:
    """`{total, trainable, trainable_modules}`: element counts, and the names of the
    top-level modules with trainable parameters (all of them or part)."""
    trainable, total = count_parameters(model)
    modules = [
        name
        for name, child in model.named_children()
        if any(p.requires_grad for p in child.parameters())
    ]
    return {"total": total, "trainable": trainable, "trainable_modules": modules}


def describe_model(cfg: DictConfig) -> str:
    """The model, and for fine-tuning its backbone, weights and strategy."""
    kind = str(cfg.model._target_).rpartition(".")[2]
    if "backbone" not in cfg.model:
        return kind
    strategy = cfg.model.strategy
    if strategy == "last_k":
        strategy = f"last_k (the last {cfg.model.last_k} stage(s) and the head)"
    weights = cfg.model.weights
    weights = redact(str(weights)) if weights is not None else "none (random init)"
    return f"{kind}: backbone {cfg.model.backbone}, weights {weights}, fine-tune {strategy}"


def describe_recipe(cfg: DictConfig) -> str:
    """The training recipe's parts that are on (docs/recipe.md), or "plain"."""
    data, trainer, model = cfg.data, cfg.trainer, cfg.model
    augment = augmentation(data.augment)
    parts = []
    if augment == "randaugment":
        parts.append(
            f"augment randaugment ({data.randaugment_ops} ops, magnitude "
            f"{data.randaugment_magnitude})"
        )
    elif augment != "none":
        parts.append(f"augment {augment}")
    if data.random_erasing:
        parts.append(f"random erasing {data.random_erasing:g}")
    mixing = [
        f"{name} {alpha:g}"
        for name, alpha in (("mixup", trainer.mixup_alpha), ("cutmix", trainer.cutmix_alpha))
        if alpha
    ]
    if mixing:
        parts.append(f"{' / '.join(mixing)} on {trainer.mix_prob:.0%} of the batches")
    if trainer.label_smoothing:
        parts.append(f"label smoothing {trainer.label_smoothing:g}")
    if trainer.ema_decay is not None:
        parts.append(f"weights averaged (EMA {trainer.ema_decay:g})")
    if model.get("layer_decay") is not None:
        parts.append(f"layer decay {model.layer_decay:g}")
    schedule = model.get("unfreeze_schedule")
    if schedule is not None and schedule.head_epochs is not None:
        parts.append(
            f"head alone for {schedule.head_epochs} epoch(s), then a stage every {schedule.every}"
        )
    if trainer.tta != "none":
        parts.append(f"test-time augmentation {trainer.tta}")
    return ", ".join(parts) or "plain"


def describe_run(
    cfg: DictConfig,
    parameters: dict[str, Any],
    devices: dict[str, Any],
    batch_size: int,
    steps_per_epoch: int,
    run_uri: str,
    resume: str,
) -> list[str]:
    """The lines of the log block that opens a run."""
    total, trainable = parameters["total"], parameters["trainable"]
    share = trainable / total if total else 0.0
    modules = ", ".join(parameters["trainable_modules"]) or "none"
    return [
        f"model: {describe_model(cfg)}",
        f"parameters: {trainable:,} trainable of {total:,} ({share:.1%}); trainable modules: "
        f"{modules}",
        f"recipe: {describe_recipe(cfg)}",
        f"devices: {devices['device']}, {devices['num_processes']} process(es); "
        f"trainer.mixed_precision={devices['mixed_precision']}",
        f"batch: {batch_size} per process and micro-batch (data.batch_size={cfg.data.batch_size}"
        f", trainer.grad_accum_steps={cfg.trainer.grad_accum_steps}); {steps_per_epoch} "
        f"optimizer steps per epoch, trainer.epochs={cfg.trainer.epochs}",
        f"run directory: {run_uri}",
        f"resume: {resume}",
    ]
