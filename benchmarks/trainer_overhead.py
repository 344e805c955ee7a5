"""The overhead of inat's Trainer over a plain PyTorch loop, on the same model and batches.

    python -m benchmarks.trainer_overhead            # writes benchmarks/results.md
    python -m benchmarks.trainer_overhead --epochs 8 --side 64

Both train the same scratch CNN from the same initial weights, with the same optimizer and
schedule, on the same batches held in memory (so data loading is out of the figures), with
the same random seed per epoch. inat's side is `Trainer.train_epoch` as `inat train` runs
it (Accelerate, gradient accumulation, the step counters, progress, the stop-signal and
non-finite checks); the plain side is the loop below. Reported per epoch: both times, the
overhead, and both mean training losses, which must agree to 5 decimals.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import tempfile
import time
from pathlib import Path

import torch
from accelerate import Accelerator

from benchmarks import RESULTS, write_section
from benchmarks.throughput import machine
from inat.compose import compose
from inat.train.optim import build_optimizer, build_scheduler
from inat.train.signals import StopRequest
from inat.train.trainer import Trainer

# Host synchronisations per optimizer step in Trainer.train_epoch (read from the code):
SYNCS = (
    "1 on one process (`loss.item()`, for the progress line and the non-finite check); "
    "+1 with several processes (the all-reduce of the stop and non-finite flags, read "
    "back); +1 with fp16 (Accelerate reads the loss scale to tell a skipped step)"
)


class InMemory(list):
    """Batches held in memory, with the `set_epoch` a prepared DataLoader has."""

    def set_epoch(self, epoch: int) -> None:
        """Nothing to reshuffle: every epoch sees the same batches in the same order."""


def plain_epoch(model, optimizer, scheduler, criterion, transform, batches) -> float:
    """One epoch of the plain loop; returns its mean training loss."""
    model.train()
    total, count = 0.0, 0
    for images, labels in batches:
        logits = model(transform(images))
        loss = criterion(logits.float(), labels)
        loss.backward()
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        total += loss.item() * labels.numel()
        count += labels.numel()
    return total / count


def measure(workdir: Path, epochs: int, side: int) -> tuple[list[dict[str, float]], int]:
    """Per epoch: each side's seconds and mean training loss; and the steps of an epoch."""
    cfg = compose(
        [
            f"output={workdir}/out",
            f"data.cache_dir={workdir}/cache",
            "data.synthetic.train_per_class=128",
            f"data.synthetic.image_side={side}",
            f"data.image_size={side}",
            "data.batch_size=32",
            "data.augment=false",
            "model.filters=[16,32,32,64,64]",
            "model.kernel_size=3",
            "model.dense_neurons=64",
            "optimizer=adam",
            "optimizer.lr=0.001",
            "scheduler=cosine",
            f"trainer.epochs={epochs}",
            f"trainer.log_every_n_steps={10**9}",  # no per-step tracker record
        ]
    )
    accelerator = Accelerator(cpu=True)
    trainer = Trainer(cfg, accelerator, [], StopRequest())
    initial = copy.deepcopy(trainer.model)
    trainer.setup_data()
    batches = InMemory(trainer.train_dl)
    trainer.train_dl = batches

    optimizer = build_optimizer(cfg.optimizer, initial.param_groups())
    scheduler = build_scheduler(cfg.scheduler, optimizer, len(batches), epochs)
    criterion = torch.nn.CrossEntropyLoss(label_smoothing=cfg.trainer.label_smoothing)
    transform = trainer.data.train_transform

    rows = []
    for epoch in range(epochs):
        trainer.state.epoch = epoch
        torch.manual_seed(epoch)
        record = trainer.train_epoch()
        loss_sum, _, count = record.sums.tolist()
        torch.manual_seed(epoch)
        start = time.perf_counter()
        plain_loss = plain_epoch(initial, optimizer, scheduler, criterion, transform, batches)
        plain_seconds = time.perf_counter() - start
        rows.append(
            {
                "inat_s": record.seconds,
                "plain_s": plain_seconds,
                "inat_loss": loss_sum / count,
                "plain_loss": plain_loss,
            }
        )
        print(f"epoch {epoch + 1}: {rows[-1]}", flush=True)
    return rows, len(batches)


def report(rows: list[dict[str, float]], info: dict[str, str], side: int, steps: int) -> str:
    """The results section."""
    # The first epoch warms caches and allocators on both sides: the verdict leaves it out.
    inat_s = statistics.median(r["inat_s"] for r in rows[1:])
    plain_s = statistics.median(r["plain_s"] for r in rows[1:])
    overhead = inat_s / plain_s - 1
    equal = all(round(r["inat_loss"], 5) == round(r["plain_loss"], 5) for r in rows)
    lines = [
        "# Benchmark: the Trainer's overhead over a plain PyTorch loop",
        "",
        "Written by `python -m benchmarks.trainer_overhead` (see its docstring).",
        "",
        *(f"- {key}: {value}" for key, value in info.items()),
        f"- model and data: scratch CNN (filters 16-64), {side}x{side} generated images, "
        f"batches of 32, {steps} steps an epoch, Adam on a cosine schedule, fp32 on the CPU",
        f"- host synchronisations per step in the Trainer's loop: {SYNCS}",
        "",
        "| epoch | inat | plain loop | overhead | inat train loss | plain train loss |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for i, r in enumerate(rows, 1):
        lines.append(
            f"| {i} | {r['inat_s']:.3f} s | {r['plain_s']:.3f} s "
            f"| {r['inat_s'] / r['plain_s'] - 1:+.1%} | {r['inat_loss']:.5f} "
            f"| {r['plain_loss']:.5f} |"
        )
    lines += [
        "",
        f"Median over epochs 2-{len(rows)}: inat {inat_s:.3f} s, plain {plain_s:.3f} s, "
        f"overhead {overhead:+.1%} (goal: at most +5%): "
        f"{'met' if overhead <= 0.05 else 'NOT met'}.",
        f"Losses equal to 5 decimals in every epoch: {'yes' if equal else 'NO'}.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    """Command line: measure, print the report, write it to --out."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--side", type=int, default=64)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    info = machine()
    with tempfile.TemporaryDirectory() as folder:
        rows, steps = measure(Path(folder), args.epochs, args.side)
    text = report(rows, info, args.side, steps)
    print(text)
    write_section(args.out, text)


if __name__ == "__main__":
    main()
