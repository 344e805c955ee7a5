"""Throughput of the notebooks' per-image pipeline against inat's, and of the model alone.

    python -m benchmarks.throughput                    # writes benchmarks/results.md
    python -m benchmarks.throughput --images 2000 --workdir /tmp/inat-bench --out results.md

One run, one machine, one generated data set of photo-like JPEGs (benchmarks.jpegs).
Every measurement runs in a fresh process, so that its peak memory (the proportional set
size of the process and its DataLoader workers, sampled) is its own:

- data loading alone: the notebooks' pipeline (torchvision ImageFolder, PIL decoding and
  transforms in every epoch, a DataLoader with workers) against inat's prepared pipeline
  (uint8 shards, batches augmented by inat.data.batch_transform), as model-ready batches;
- one-off preparation, and the start of a second run that finds the cache;
- full training steps of the original best scratch config and of ResNet-50 head-only
  fine-tuning with each pipeline, and the compute bound: the same steps on a batch
  already in memory. Data stall = 1 - compute-bound step time / real step time;
- head-only fine-tuning on cached features (trainer.cache_features) against the
  per-batch path.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import json
import logging
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from torch.utils.data import DataLoader

import inat
from benchmarks import RESULTS, write_section
from benchmarks.jpegs import generate
from inat.data.datasets import IMAGENET_MEAN, IMAGENET_STD
from inat.data.workers import usable_cpus

log = logging.getLogger(__name__)

CONFIG_DIR = str(Path(inat.__file__).parent / "configs")
BATCH = 64  # the original configs' batch size
SIDE = 224
BASELINE_WORKERS = 2  # what the notebooks used on Colab's 2 CPUs
SCRATCH_STEPS = 4  # timed training steps after one warm-up step
RESNET_STEPS = 3


@contextlib.contextmanager
def peak_memory(result: dict[str, Any]) -> Iterator[None]:
    """Sample the PSS of this process and its children; put the peak in result["peak_mb"].

    PSS counts pages shared by processes (the mapped cache, forked workers) once in total.
    """
    me = psutil.Process()
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            total = 0
            for process in [me, *me.children(recursive=True)]:
                with contextlib.suppress(psutil.Error):  # a worker that just ended
                    total += process.memory_full_info().pss
            peak = max(peak, total)
            done.wait(0.2)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
        result["peak_mb"] = round(peak / 2**20)


# -- the pipelines


def baseline_loader(images: Path, augment: bool) -> DataLoader:
    """The notebooks' pipeline: ImageFolder, PIL decoding and transforms, every epoch."""
    from torchvision import datasets, transforms

    if augment:
        geometry = [
            transforms.RandomResizedCrop(SIDE, scale=(0.6, 1.0)),
            transforms.RandomHorizontalFlip(),
            transforms.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2),
        ]
    else:
        geometry = [transforms.Resize((SIDE, SIDE))]
    transform = transforms.Compose(
        [*geometry, transforms.ToTensor(), transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)]
    )
    dataset = datasets.ImageFolder(str(images / "train"), transform=transform)
    return DataLoader(
        dataset, batch_size=BATCH, shuffle=True, num_workers=BASELINE_WORKERS, drop_last=True
    )


def data_cfg(workdir: Path, augment: bool) -> dict[str, Any]:
    """inat's data config for the generated images (configs/data/nature12k.yaml defaults)."""
    base = OmegaConf.to_container(OmegaConf.load(Path(CONFIG_DIR) / "data" / "nature12k.yaml"))
    return {
        **base,
        "source": str(workdir / "images"),
        "cache_dir": str(workdir / "cache"),
        "image_size": SIDE,
        "batch_size": BATCH,
        "augment": augment,
    }


Batches = Callable[[], Iterator[tuple[torch.Tensor, torch.Tensor]]]


def pipeline(name: str, workdir: Path, augment: bool) -> tuple[Batches, str]:
    """A function giving an epoch of model-ready (images, labels) batches, and its description."""
    if name == "baseline":
        loader = baseline_loader(workdir / "images", augment)
        return (lambda: iter(loader)), f"workers: {BASELINE_WORKERS}"
    from inat.data import build_dataloaders

    loaders = build_dataloaders(data_cfg(workdir, augment), seed=0)

    def epoch() -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for images, labels in loaders.train:
            yield loaders.train_transform(images), labels

    how = f"workers: {loaders.train.num_workers} (auto)"
    if name == "inat-uint8":
        return (lambda: iter(loaders.train)), how
    return epoch, how


# -- the measurements, each run in a process of its own


def measure_loading(workdir: Path, name: str, augment: bool) -> dict[str, Any]:
    """Images/s of one epoch of batches, from the start of the workers to the last batch."""
    result: dict[str, Any] = {}
    with peak_memory(result):
        epoch, how = pipeline(name, workdir, augment)
        start, count = time.perf_counter(), 0
        for _, labels in epoch():
            count += len(labels)
        result.update(images_per_s=count / (time.perf_counter() - start), how=how)
    return result


def measure_preparation(workdir: Path) -> dict[str, Any]:
    """Seconds to prepare the cache from nothing (decoding every image once)."""
    from inat.data import build_dataloaders

    shutil.rmtree(workdir / "images.prepared", ignore_errors=True)
    shutil.rmtree(workdir / "cache" / "content-hashes", ignore_errors=True)
    result: dict[str, Any] = {}
    with peak_memory(result):
        start = time.perf_counter()
        loaders = build_dataloaders(data_cfg(workdir, augment=True), seed=0)
        seconds = time.perf_counter() - start
    count = sum(len(loader.dataset) for loader in (loaders.train, loaders.val, loaders.test))
    result.update(seconds=seconds, images=count, images_per_s=count / seconds)
    return result


def measure_restart(workdir: Path) -> dict[str, Any]:
    """Seconds from `import inat.data` to the first training batch, the cache being there."""
    start = time.perf_counter()
    from inat.data import build_dataloaders

    loaders = build_dataloaders(data_cfg(workdir, augment=True), seed=0)
    next(iter(loaders.train))
    return {"seconds": time.perf_counter() - start}


def _model(experiment: str) -> tuple[Any, torch.nn.Module, torch.optim.Optimizer]:
    """(accelerator, model, optimizer) of a repo experiment, as the trainer builds them."""
    from accelerate import Accelerator

    from inat.models import build_model
    from inat.train.optim import build_optimizer

    # Pretrained weights change no timing; random ones need no download.
    overrides = ["model.weights=null"] if "finetune" in experiment else []
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="train", overrides=[f"experiment={experiment}", *overrides])
    torch.manual_seed(0)
    model = build_model(cfg.model, cfg.data.num_classes, SIDE)
    if cfg.trainer.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(cfg.optimizer, model.param_groups())
    accelerator = Accelerator(cpu=cfg.trainer.cpu, mixed_precision=cfg.trainer.mixed_precision)
    model, optimizer = accelerator.prepare(model, optimizer)
    model.train()
    return accelerator, model, optimizer


def _step(accelerator, model, optimizer, images: torch.Tensor, labels: torch.Tensor) -> None:
    """One optimizer step, as the trainer takes it (loss.item() waits for the device)."""
    loss = F.cross_entropy(model(images).float(), labels)
    accelerator.backward(loss)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    loss.item()


def measure_steps(
    workdir: Path, name: str, experiment: str, augment: bool, steps: int
) -> dict[str, Any]:
    """Images/s of training steps fed by a pipeline (real), and of the same steps on the
    batch already on the device (compute bound), alternated so that both see the same load
    of a shared machine."""
    result: dict[str, Any] = {}
    with peak_memory(result):
        accelerator, model, optimizer = _model(experiment)
        epoch, how = pipeline(name, workdir, augment)
        batches = epoch()

        def real_step() -> tuple[torch.Tensor, torch.Tensor]:
            images, labels = (t.to(accelerator.device) for t in next(batches))
            _step(accelerator, model, optimizer, images, labels)
            return images, labels

        batch = real_step()  # warm-up: workers start, the allocator grows
        real, compute = [], []
        for _ in range(steps):
            start = time.perf_counter()
            batch = real_step()
            real.append(time.perf_counter() - start)
            start = time.perf_counter()
            _step(accelerator, model, optimizer, *batch)
            compute.append(time.perf_counter() - start)
    # The median of the pairs' ratios: one step slowed by other work on the machine
    # does not decide the figure.
    ratios = [c / r for c, r in zip(compute, real, strict=True)]
    result.update(
        images_per_s=BATCH * steps / sum(real),
        compute_images_per_s=BATCH * steps / sum(compute),
        stall=1 - statistics.median(ratios),
        how=how,
    )
    return result


def measure_channels_last(steps: int) -> dict[str, Any]:
    """Compute-bound images/s of the scratch config with and without channels_last."""
    from accelerate import Accelerator

    from inat.models import build_model
    from inat.train.optim import build_optimizer

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="train", overrides=["experiment=original_scratch"])
    result: dict[str, Any] = {}
    images = torch.randn(BATCH, 3, SIDE, SIDE)
    labels = torch.randint(0, 10, (BATCH,))
    for channels_last in (False, True):
        torch.manual_seed(0)
        model = build_model(cfg.model, 10, SIDE)
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        optimizer = build_optimizer(cfg.optimizer, model.param_groups())
        accelerator = Accelerator(mixed_precision=cfg.trainer.mixed_precision)
        model, optimizer = accelerator.prepare(model, optimizer)
        batch = images.to(accelerator.device)
        _step(accelerator, model, optimizer, batch, labels.to(accelerator.device))
        start = time.perf_counter()
        for _ in range(steps):
            _step(accelerator, model, optimizer, batch, labels.to(accelerator.device))
        key = "channels_last" if channels_last else "contiguous"
        result[key] = BATCH * steps / (time.perf_counter() - start)
    return result


def measure_features(workdir: Path, steps: int) -> dict[str, Any]:
    """ResNet-50 head-only: the frozen backbone's forward rate (what trainer.cache_features
    pays once) and the rate of head steps on cached 2048-wide features."""
    from inat.data import build_dataloaders

    result: dict[str, Any] = {}
    with peak_memory(result):
        accelerator, model, optimizer = _model("original_finetune")
        backbone = accelerator.unwrap_model(model).backbone.eval()
        loaders = build_dataloaders(data_cfg(workdir, augment=False), seed=0)
        batches = iter(loaders.train)
        with torch.no_grad():
            images = loaders.train_transform(next(batches)[0].to(accelerator.device))
            backbone(images)  # warm-up
            start = time.perf_counter()
            for _ in range(steps):
                images = loaders.train_transform(next(batches)[0].to(accelerator.device))
                with accelerator.autocast():
                    backbone(images).float().cpu()
            extract = BATCH * steps / (time.perf_counter() - start)
        head = accelerator.unwrap_model(model).head
        features = torch.randn(len(loaders.train.dataset), 2048)
        labels = torch.randint(0, 10, (len(features),))
        cached = DataLoader(list(zip(features, labels, strict=True)), batch_size=BATCH)
        start = time.perf_counter()
        for x, y in cached:
            _step(accelerator, head, optimizer, x.to(accelerator.device), y.to(accelerator.device))
        head_rate = len(features) / (time.perf_counter() - start)
    result.update(extract_images_per_s=extract, head_images_per_s=head_rate)
    return result


MEASUREMENTS: dict[str, Callable[[Path], dict[str, Any]]] = {
    "prepare": measure_preparation,
    "restart": measure_restart,
    "load-baseline": lambda w: measure_loading(w, "baseline", augment=True),
    "load-inat": lambda w: measure_loading(w, "inat", augment=True),
    "load-inat-uint8": lambda w: measure_loading(w, "inat-uint8", augment=True),
    "load-inat-plain": lambda w: measure_loading(w, "inat", augment=False),
    "scratch-baseline": lambda w: measure_steps(
        w, "baseline", "original_scratch", augment=True, steps=SCRATCH_STEPS
    ),
    "scratch-inat": lambda w: measure_steps(
        w, "inat", "original_scratch", augment=True, steps=SCRATCH_STEPS
    ),
    "scratch-channels-last": lambda w: measure_channels_last(steps=2),
    "resnet-baseline": lambda w: measure_steps(
        w, "baseline", "original_finetune", augment=False, steps=RESNET_STEPS
    ),
    "resnet-inat": lambda w: measure_steps(
        w, "inat", "original_finetune", augment=False, steps=RESNET_STEPS
    ),
    "resnet-features": lambda w: measure_features(w, steps=RESNET_STEPS),
}


def run_measurement(name: str, workdir: Path) -> dict[str, Any]:
    """Run one measurement in a fresh process; its result, with the process's wall time."""
    log.info("measuring %s", name)
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.throughput", "--measure", name, "--workdir", workdir],
        cwd=Path(__file__).resolve().parent.parent,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"measurement {name} failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["process_seconds"] = time.perf_counter() - start
    return result


# -- the report


def machine() -> dict[str, str]:
    """What the figures were measured on."""
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    from PIL import Image, features

    commit = subprocess.run(
        ["git", "describe", "--always", "--dirty"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": commit or "unknown",
        "cpu": f"{model}; {usable_cpus()} usable CPUs (of {os.cpu_count()} on the host)",
        "memory": f"{psutil.virtual_memory().total / 2**30:.0f} GiB",
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else "none",
        "load": "load average {:.1f}, {:.1f}, {:.1f} at the start".format(*os.getloadavg()),
        "software": (
            f"Python {platform.python_version()}, torch {torch.__version__}, "
            f"Pillow {Image.__version__} (libjpeg-turbo {features.version('libjpeg_turbo')})"
        ),
    }


def _fmt(value: float, digits: int = 0) -> str:
    return f"{value:,.{digits}f}"


def report(r: dict[str, dict[str, Any]], info: dict[str, str], images: int) -> str:
    """The results as Markdown."""
    base = r["load-baseline"]["images_per_s"]
    lines = [
        "# Benchmark: data pipeline and training throughput",
        "",
        "Written by `python -m benchmarks.throughput` (see its docstring); numbers from one run.",
        "",
        *(f"- {key}: {value}" for key, value in info.items()),
        f"- data: {images} generated JPEGs (benchmarks/jpegs.py: mostly 800x600, quality 90, "
        "about 190 KB each), 10 classes, 80% in train/; batches of 64 at 224 px",
        "",
    ]
    if info["gpu"] == "none":
        lines += [
            "No GPU was available: every figure is the CPU's, and inat's batch augmentation ran",
            "on the CPU too (on a GPU it runs there). The machine was shared with other work:",
            "treat differences under about 10% as noise.",
            "",
        ]
    lines += [
        "## Data loading alone (one epoch of train/, workers started included)",
        "",
        "What each pipeline hands to the training step. The baseline's DataLoader decodes and",
        "augments every image in every epoch. inat's hands over uint8 batches and the step",
        "augments them where the model runs (`data.train_transform`); the rows below it show",
        "that augmentation done here, on the CPU, where a GPU run would do it on the GPU.",
        "",
        "| pipeline | images/s | vs baseline | peak memory |",
        "|---|---:|---:|---:|",
    ]
    for key, label in (
        ("load-baseline", "baseline: ImageFolder + PIL + transforms, augmented"),
        ("load-inat-uint8", "inat prepared: uint8 batches from the mapped shards"),
        ("load-inat", "inat prepared + batch augmentation on this CPU"),
        ("load-inat-plain", "inat prepared + normalization only on this CPU (no augmentation)"),
    ):
        m = r[key]
        lines.append(
            f"| {label}, {m['how']} | {_fmt(m['images_per_s'])} | "
            f"{m['images_per_s'] / base:.1f}x | {_fmt(m['peak_mb'])} MB |"
        )
    prep, restart = r["prepare"], r["restart"]
    lines += [
        "",
        "## One-off preparation",
        "",
        f"- decode and resize {prep['images']} images once: {prep['seconds']:.1f} s "
        f"({_fmt(prep['images_per_s'])} images/s on {usable_cpus()} CPUs), "
        f"peak memory {_fmt(prep['peak_mb'])} MB",
        f"- a second run with the cache in place: first batch {restart['seconds']:.1f} s after "
        f"importing inat ({restart['process_seconds']:.1f} s with Python's start)",
        "",
        "## Full training steps",
        "",
        "Real: the pipeline feeds the steps. Compute bound: the same steps on a batch already",
        "in memory, each right after a real one. Data stall = 1 - compute-bound time / real",
        f"time (the median over {SCRATCH_STEPS} pairs of steps for the scratch CNN,",
        f"{RESNET_STEPS} for ResNet-50). On a CPU the model's compute dwarfs data loading, so",
        "stalls are small and a shared machine's noise is of the same size.",
        "",
        "| model | pipeline | images/s | compute bound | data stall | peak memory |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for key, model, label in (
        ("scratch-baseline", "original best scratch CNN, augmented", "baseline"),
        ("scratch-inat", "original best scratch CNN, augmented", "inat prepared"),
        ("resnet-baseline", "ResNet-50 head only", "baseline"),
        ("resnet-inat", "ResNet-50 head only", "inat prepared, per batch"),
    ):
        m = r[key]
        lines.append(
            f"| {model} | {label} | {m['images_per_s']:.1f} | {m['compute_images_per_s']:.1f} | "
            f"{100 * m['stall']:.0f}% | {_fmt(m['peak_mb'])} MB |"
        )
    f = r["resnet-features"]
    per_batch = r["resnet-inat"]["images_per_s"]
    train = images * 0.8 * 0.8  # train/ less the validation share
    epochs = 10  # experiment=original_finetune
    cached_time = images / f["extract_images_per_s"] + epochs * train / f["head_images_per_s"]
    cl = r["scratch-channels-last"]
    lines += [
        "",
        "## ResNet-50 head-only fine-tuning on cached features (trainer.cache_features)",
        "",
        f"- the frozen backbone, once per image: {f['extract_images_per_s']:.1f} images/s",
        f"- head steps on cached features: {_fmt(f['head_images_per_s'])} images/s",
        f"- {epochs} epochs of this data set ({train:.0f} training images, every image's "
        f"features computed once): {epochs * train / per_batch / 60:.1f} min per batch, "
        f"{cached_time / 60:.1f} min with cached features",
        "",
        "## channels_last (trainer.channels_last, default true)",
        "",
        f"- scratch CNN, compute bound: {cl['contiguous']:.1f} images/s contiguous, "
        f"{cl['channels_last']:.1f} images/s channels_last",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    """Command line: run every measurement, print the report and write it to --out."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument(
        "--workdir", type=Path, default=Path(tempfile.gettempdir()) / "inat-benchmark"
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--measure", choices=sorted(MEASUREMENTS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.measure:
        logging.getLogger("inat").setLevel(logging.WARNING)
        print(json.dumps(MEASUREMENTS[args.measure](args.workdir)))
        return
    start = time.perf_counter()
    info = machine()
    generate(args.workdir / "images", args.images)
    results = {name: run_measurement(name, args.workdir) for name in MEASUREMENTS}
    info["load"] += ", {:.1f} at the end (other work on the machine)".format(*os.getloadavg())
    text = report(results, info, args.images)
    text += f"\nThe whole benchmark took {(time.perf_counter() - start) / 60:.1f} min.\n"
    print(text)
    write_section(args.out, text)


if __name__ == "__main__":
    main()
