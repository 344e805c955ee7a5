"""`inat smoke`: can this machine (or image) train? Four checks, each timed.

    inat smoke                                          # on a laptop, in CI, in the image
    inat smoke output=s3://bucket/runs data.source=s3://bucket/nature_12K.zip
    docker run --rm --gpus all IMAGE inat smoke --require-gpu

The arguments are `inat train` overrides: the checks use the output, data source and
storage settings that a training run with the same overrides would use. Each check prints
one line, `PASS|FAIL|SKIP name (1.23 s): detail`:

- accelerator: the CUDA devices (a kernel runs on them), or the CPU; the NVIDIA driver, the
  CUDA that PyTorch is built for and PyTorch's version. With --require-gpu, no usable GPU
  fails it with what to do (e.g. the image's CUDA 12 build for an older driver), and the
  other checks do not run;
- training: a few fp16 steps of the scratch CNN on generated images, through the real
  trainer in a temporary folder (on the CPU in float32: Accelerate has no fp16 there);
- checkpoint: a checkpoint written to the output, read back, compared and deleted;
- data: the data source can be read (skipped for generated data).

The exit code is 0 only if no check failed.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

import requests
import torch

from inat.compose import compose
from inat.data import check_source
from inat.errors import ExitCode, InatError
from inat.progress import byte_size
from inat.storage import S3Settings, open_storage, storage_settings
from inat.train import train
from inat.train.checkpoint import CheckpointManager
from inat.train.versions import versions

# The trainer on generated data: 10 classes x 16 images (20% held out for validation),
# batch 32, 2 epochs: 10 optimizer steps of the original scratch CNN at 32x32 pixels.
TRAINING = (
    "data=synthetic",
    "data.synthetic.train_per_class=16",
    "data.synthetic.image_side=32",
    "data.image_size=32",
    "data.batch_size=32",
    "data.num_workers=0",
    "model=scratch_cnn",
    "trainer.mixed_precision=fp16",
    "trainer.epochs=2",
    "name=smoke",
)
CHECKPOINT_FLOATS = 1 << 20  # 4 MB: big enough to be a real transfer, quick anywhere
# The oldest NVIDIA driver that runs a CUDA major version's applications (NVIDIA's CUDA minor
# version compatibility): PyTorch built for any CUDA 12.x runs on >= 525.60.13, for 13.x on
# >= 580. docs/container.md: the image's builds and the drivers they need.
MIN_DRIVER = {12: (525, 60, 13), 13: (580,)}


class Skip(Exception):
    """The check does not apply here; the message says why."""


class CheckFailed(Exception):
    """The check failed; the message says what was found and what to do."""


@dataclass(frozen=True)
class Outcome:
    """The result of one check."""

    name: str
    status: str  # PASS | FAIL | SKIP
    seconds: float
    detail: str

    def line(self) -> str:
        """The check's report line."""
        return f"{self.status} {self.name} ({self.seconds:.2f} s): {self.detail}"


def run_check(name: str, check: Callable[[], str]) -> Outcome:
    """Run `check`, which returns a detail line or raises Skip or any error; print its line."""
    start = time.perf_counter()
    try:
        status, detail = "PASS", check()
    except Skip as e:
        status, detail = "SKIP", str(e)
    except (CheckFailed, InatError) as e:
        status, detail = "FAIL", str(e)
    except Exception as e:
        status, detail = "FAIL", f"{type(e).__name__}: {e}"
    outcome = Outcome(name, status, time.perf_counter() - start, detail)
    print(outcome.line(), flush=True)
    return outcome


def not_run(reason: str) -> Callable[[], str]:
    """A check that does not run, for `reason`."""

    def check() -> str:
        raise Skip(reason)

    return check


@dataclass(frozen=True)
class Driver:
    """The NVIDIA driver that nvidia-smi reports: its version, or why there is none."""

    version: str | None
    problem: str = ""

    def __str__(self) -> str:
        if self.version:
            return f"NVIDIA driver {self.version}"
        return f"NVIDIA driver not found ({self.problem})"


def nvidia_driver() -> Driver:
    """The driver's version from `nvidia-smi --query-gpu=driver_version` (the first GPU's)."""
    command = ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=10)
    except FileNotFoundError:
        return Driver(None, "no nvidia-smi on PATH")
    except (OSError, subprocess.TimeoutExpired) as e:
        return Driver(None, f"nvidia-smi: {e}")
    lines = [line.strip() for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    if done.returncode == 0 and lines and re.fullmatch(r"\d+(\.\d+)+", lines[0]):
        return Driver(lines[0])
    said = lines[0] if lines else "no output"
    return Driver(None, f"nvidia-smi exited with {done.returncode}: {said}")


def versions_found(driver: Driver) -> str:
    """The driver, the CUDA that PyTorch is built for, and PyTorch's version."""
    cuda = f"CUDA {torch.version.cuda}" if torch.version.cuda else "no CUDA (a CPU-only build)"
    return f"{driver}, {cuda}, torch {torch.__version__}"


def cuda_problem() -> str:
    """Why CUDA does not initialise, in PyTorch's words (its first sentence)."""
    try:
        torch.cuda.init()
    except Exception as e:  # whatever CUDA's initialisation raises is the answer
        return str(e).split(". ")[0].strip().rstrip(".")
    return "CUDA initialises but finds no device"


def gpu_fix(driver: Driver, cuda: str | None) -> str:
    """What to do when PyTorch, built for `cuda` (None: for the CPU), finds no usable GPU."""
    if cuda is None:
        return "This PyTorch is built for the CPU only: install a CUDA build (the image's)."
    if driver.version is None:
        return (
            "Give the container the GPUs: docker run --gpus all, apptainer exec --nv, "
            "or a Kubernetes nvidia.com/gpu limit."
        )
    found = tuple(int(part) for part in driver.version.split("."))
    major = int(cuda.split(".")[0])
    needed = MIN_DRIVER.get(major)
    if needed is None or found >= needed:
        return (
            "Check CUDA_VISIBLE_DEVICES and that the container was given the GPUs "
            "(nvidia-smi lists those it sees)."
        )
    need = f"PyTorch built for CUDA {cuda} needs NVIDIA driver >= {'.'.join(map(str, needed))}"
    if major > 12 and found >= MIN_DRIVER[12]:
        return (
            f"{need}: use the image's CUDA 12 build (bash scripts/build-image.sh --cuda 12.6.3, "
            "see docs/container.md) or a newer driver."
        )
    return f"{need}: ask for a newer driver."


def check_accelerator(require_gpu: bool) -> str:
    """The CUDA devices, after a kernel ran on each, with the driver, CUDA and PyTorch
    versions; the CPU when there is none (a failure with `require_gpu`, saying what to do)."""
    if not torch.cuda.is_available():
        driver = nvidia_driver()
        detail = (
            f"no CUDA device visible, training runs on the CPU ({os.cpu_count()} cores); "
            f"{versions_found(driver)}"
        )
        if require_gpu:
            raise CheckFailed(
                f"no usable CUDA device: {cuda_problem()}; {versions_found(driver)}. "
                f"{gpu_fix(driver, torch.version.cuda)}"
            )
        return detail
    devices = []
    for index in range(torch.cuda.device_count()):
        ones = torch.ones(1024, device=f"cuda:{index}")
        if (ones * 2).sum().item() != 2048:
            raise CheckFailed(f"cuda:{index} computed a wrong sum")
        props = torch.cuda.get_device_properties(index)
        devices.append(
            f"cuda:{index} {props.name} (sm_{props.major}{props.minor}, "
            f"{props.total_memory / 2**30:.0f} GiB)"
        )
    return f"{', '.join(devices)}; {versions_found(nvidia_driver())}"


def check_training() -> str:
    """A few fp16 steps of the scratch CNN through the trainer, in a temporary folder."""
    with tempfile.TemporaryDirectory(prefix="inat-smoke-") as tmp:
        cfg = compose([*TRAINING, f"output={tmp}/out", f"data.cache_dir={tmp}/cache"])
        result = train(cfg)
    final = result["final"]  # a loss that is not finite already failed the run
    steps, skipped = final["step"], result["skipped_steps"]
    if skipped >= steps:
        raise CheckFailed(f"all {steps} fp16 steps overflowed and were skipped: no update")
    device = result["devices"]["device"]
    if device == "cpu":
        how = "in float32, fp16 skipped: Accelerate trains fp16 configs in float32 on the CPU"
    else:
        how = "in fp16 (autocast, loss scaling)"
    return (
        f"{steps} steps of the scratch CNN on {device} {how}; loss {final['train_loss']:.3f}, "
        f"{skipped} step(s) skipped for overflow, {final['images_per_sec']:.0f} images/s"
    )


def check_checkpoint(output: str, settings: S3Settings | None = None) -> str:
    """A checkpoint written below `output` (with the storage `settings`), read back, compared,
    then deleted."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    probe = f".inat-smoke-{stamp}-{uuid.uuid4().hex[:8]}"
    outputs = open_storage(output, settings)
    outputs.check_writable()
    storage = outputs.child(probe)
    weights = torch.randn(CHECKPOINT_FLOATS)
    checkpoints = CheckpointManager(storage, keep=1)
    start = time.perf_counter()
    relpath = checkpoints.save({"model": {"weights": weights}, "epoch": 0}, step=0, is_best=True)
    written = time.perf_counter() - start
    size = storage.size(relpath)
    try:
        start = time.perf_counter()
        loaded = checkpoints.load(checkpoints.latest())
        read = time.perf_counter() - start
        if not torch.equal(loaded["model"]["weights"], weights):
            raise CheckFailed(f"the checkpoint read back from {storage.uri} differs")
    finally:
        outputs.delete_prefix(probe)
    return (
        f"{byte_size(size)} written to {storage.uri} in {written:.2f} s, "
        f"read back in {read:.2f} s, identical, deleted"
    )


def check_data(source: str, settings: S3Settings | None = None) -> str:
    """The data source can be read (with the storage `settings`); skipped for generated data."""
    if source == "synthetic":
        raise Skip("data.source=synthetic: generated on the spot, nothing to reach")
    if source.startswith(("http://", "https://")):
        headers = {"Accept-Encoding": "identity"}
        with requests.get(source, headers=headers, stream=True, timeout=30) as response:
            if response.status_code >= 400:
                raise CheckFailed(
                    f"{source} answers HTTP {response.status_code} {response.reason}: "
                    "check data.source"
                )
            length = response.headers.get("Content-Length")
        size = f", {byte_size(int(length))}" if length else ""
        return f"{source} answers HTTP {response.status_code}{size}"
    check_source(source, settings)
    return f"{source} can be read"


def smoke(overrides: Sequence[str], require_gpu: bool = False) -> int:
    """Run every check with the output and data that `overrides` configure; the exit code.
    With `require_gpu`, the accelerator check comes first and, failing, ends the run."""
    cfg = compose(overrides)
    stamp = versions()
    print(
        f"inat {stamp['inat']}, torch {stamp['torch']}, Python {stamp['python']}; "
        f"image {stamp['image'] or '-'}, commit {stamp['git_commit'] or '-'}",
        flush=True,
    )
    # The check lines are the report; the trainer's progress logs would bury them.
    logger = logging.getLogger("inat")
    level = logger.level
    logger.setLevel(logging.WARNING)
    start = time.perf_counter()
    try:
        outcomes = [run_check("accelerator", lambda: check_accelerator(require_gpu))]
        if require_gpu and outcomes[0].status == "FAIL":
            # Training and writing on the CPU would only delay the answer.
            skip = not_run("not run: --require-gpu and no usable GPU")
            outcomes += [run_check(name, skip) for name in ("training", "checkpoint", "data")]
        else:
            outcomes.append(run_check("training", check_training))
            settings = storage_settings(cfg.storage)
            outcomes += [
                run_check("checkpoint", lambda: check_checkpoint(str(cfg.output), settings)),
                run_check("data", lambda: check_data(str(cfg.data.source), settings)),
            ]
    finally:
        logger.setLevel(level)
    counts = {s: sum(o.status == s for o in outcomes) for s in ("PASS", "FAIL", "SKIP")}
    print(
        f"smoke: {counts['PASS']} passed, {counts['FAIL']} failed, {counts['SKIP']} skipped "
        f"in {time.perf_counter() - start:.1f} s",
        flush=True,
    )
    return ExitCode.FAILURE if counts["FAIL"] else ExitCode.OK
