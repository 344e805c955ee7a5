"""The accelerator check's report: the NVIDIA driver (from a real nvidia-smi executable put on
PATH), the CUDA that PyTorch is built for, PyTorch's version, and what to do without a GPU."""

from __future__ import annotations

import pytest
import torch

from inat.smoke import CheckFailed, Driver, check_accelerator, gpu_fix, nvidia_driver

no_gpu = pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA device is visible here")
BUILT_FOR = f"CUDA {torch.version.cuda}, torch {torch.__version__}"
NOT_REACHED = (
    "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. "
    "Make sure that the latest NVIDIA driver is installed and running.\n"
)


def test_the_driver_is_the_version_nvidia_smi_reports_for_the_first_gpu(nvidia_smi):
    nvidia_smi("550.54.15\n550.54.15\n")

    driver = nvidia_driver()

    assert driver == Driver("550.54.15")
    assert str(driver) == "NVIDIA driver 550.54.15"


def test_without_nvidia_smi_the_driver_is_not_found(no_nvidia_smi):
    assert str(nvidia_driver()) == "NVIDIA driver not found (no nvidia-smi on PATH)"


def test_an_nvidia_smi_that_cannot_reach_the_driver_is_quoted(nvidia_smi):
    nvidia_smi(NOT_REACHED, 9)

    driver = nvidia_driver()

    assert driver.version is None
    assert driver.problem == (
        "nvidia-smi exited with 9: NVIDIA-SMI has failed because it couldn't communicate "
        "with the NVIDIA driver. Make sure that the latest NVIDIA driver is installed and running."
    )


@pytest.mark.parametrize(
    ("driver", "cuda", "fix"),
    [
        # The case: a cu130 PyTorch on a cluster's 535 or 550 driver.
        ("550.54.15", "13.0", "needs NVIDIA driver >= 580: use the image's CUDA 12 build"),
        ("535.183.01", "13.0", "bash scripts/build-image.sh --cuda 12.6.3"),
        # Too old even for CUDA 12's minor version compatibility.
        ("470.256.02", "13.0", "needs NVIDIA driver >= 580: ask for a newer driver"),
        ("520.61.05", "12.6", "needs NVIDIA driver >= 525.60.13: ask for a newer driver"),
        # Drivers new enough: the GPUs are what is missing.
        ("535.183.01", "12.6", "Check CUDA_VISIBLE_DEVICES"),
        ("580.95.05", "13.0", "Check CUDA_VISIBLE_DEVICES"),
        (None, "13.0", "docker run --gpus all, apptainer exec --nv"),
        ("550.54.15", None, "built for the CPU only"),
    ],
)
def test_the_fix_follows_from_the_driver_and_the_cuda_of_pytorch(driver, cuda, fix):
    assert fix in gpu_fix(Driver(driver, "no nvidia-smi on PATH"), cuda)


@no_gpu
def test_without_a_gpu_the_cpu_line_names_the_versions(nvidia_smi):
    nvidia_smi("550.54.15\n")

    detail = check_accelerator(require_gpu=False)

    assert detail.startswith("no CUDA device visible, training runs on the CPU")
    assert detail.endswith(f"; NVIDIA driver 550.54.15, {BUILT_FOR}")


@no_gpu
def test_require_gpu_on_an_old_driver_names_the_versions_and_the_cuda12_build(nvidia_smi):
    nvidia_smi("550.54.15\n")

    with pytest.raises(CheckFailed) as failed:
        check_accelerator(require_gpu=True)

    message = str(failed.value)
    assert message.startswith("no usable CUDA device: ")
    assert f"; NVIDIA driver 550.54.15, {BUILT_FOR}. " in message
    assert message.endswith(gpu_fix(Driver("550.54.15"), torch.version.cuda))
    if torch.version.cuda and torch.version.cuda.startswith("13."):
        assert "needs NVIDIA driver >= 580: use the image's CUDA 12 build" in message


@no_gpu
def test_require_gpu_without_a_driver_says_how_to_give_the_gpus(no_nvidia_smi):
    with pytest.raises(CheckFailed) as failed:
        check_accelerator(require_gpu=True)

    message = str(failed.value)
    assert f"NVIDIA driver not found (no nvidia-smi on PATH), {BUILT_FOR}. " in message
    if torch.version.cuda:
        assert message.endswith(
            "docker run --gpus all, apptainer exec --nv, or a Kubernetes nvidia.com/gpu limit."
        )
