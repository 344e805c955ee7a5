"""`inat weights download NAME DEST` and the checksum record model.weights verifies.

torchvision's download finds its file in $TORCH_HOME's cache, where a test puts it; timm's
comes over HTTP from a minimal Hugging Face Hub on 127.0.0.1 (HF_ENDPOINT), in a subprocess.
Without a hub (a closed port), no retry can help: exit code 65, saying what to do instead.
"""

from __future__ import annotations

import hashlib
import logging
import subprocess
from pathlib import Path

import pytest
import timm
import torch
from helpers.runs import TINY_DATA, inat_command, location
from safetensors.torch import load_file, save
from torchvision.models import ResNet18_Weights, resnet18

from inat.cli import main
from inat.errors import ConfigError
from inat.storage import LocalStorage
from inat.train.checkpoint import CheckpointManager

HINT = "on a machine with internet (a login node), run `inat weights download {name} DEST` once"


@pytest.fixture
def cached_resnet18(tmp_path, monkeypatch) -> dict[str, torch.Tensor]:
    """resnet18's DEFAULT weights as torchvision's download finds them in $TORCH_HOME: a
    randomly initialised resnet18's state dict."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    checkpoints = tmp_path / "torch-home" / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    torch.manual_seed(0)
    state = resnet18().state_dict()
    torch.save(state, checkpoints / ResNet18_Weights.IMAGENET1K_V1.url.rsplit("/", 1)[1])
    return state


@pytest.fixture
def command(caplog, capsys):
    """Run `inat ARGS` in-process; returns (exit code, what it printed, the error logged)."""
    caplog.set_level(logging.ERROR, logger="inat")

    def run(*args: str) -> tuple[int, str, str]:
        caplog.clear()
        code = main(list(args))
        return code, capsys.readouterr().out, caplog.text

    return run


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("file", ["resnet18.pth", "resnet18.safetensors"])
def test_torchvision_weights_are_written_with_their_checksum_record(
    cached_resnet18, command, make_finetune, tmp_path, file
):
    dest = tmp_path / "weights" / file

    code, printed, _ = command("weights", "download", "resnet18", str(dest))

    assert code == 0
    written = load_file(dest) if file.endswith(".safetensors") else torch.load(dest)
    assert same(written, cached_resnet18)
    assert (tmp_path / "weights" / f"{file}.sha256").read_text() == f"{sha256(dest)}  {file}\n"
    assert sorted(p.name for p in dest.parent.iterdir()) == [file, f"{file}.sha256"]
    assert f"train with: model=finetune model.backbone=resnet18 model.weights={dest}" in printed

    model = make_finetune(backbone="resnet18", weights=str(dest))  # verified, then loaded
    assert torch.equal(model.backbone.conv1.weight, cached_resnet18["conv1.weight"])


def test_a_file_that_no_longer_matches_its_record_is_refused(
    cached_resnet18, command, make_finetune, tmp_path
):
    dest = tmp_path / "resnet18.pth"
    assert command("weights", "download", "resnet18", str(dest))[0] == 0
    cached_resnet18["fc.bias"] += 1
    torch.save(cached_resnet18, dest)  # replaced, the record left as it was

    with pytest.raises(ConfigError) as info:
        make_finetune(backbone="resnet18", weights=str(dest))
    message = str(info.value)
    assert f"model.weights='{dest}' does not match its checksum record {dest}.sha256" in message
    assert f"sha256 {sha256(dest)}, recorded " in message
    assert f"Download it again with `inat weights download NAME {dest}`" in message
    assert f"or remove {dest}.sha256 if you replaced the file on purpose" in message


def test_weights_on_s3_are_verified_against_their_record(
    cached_resnet18, command, make_finetune, s3_client, s3_bucket
):
    uri = f"s3://{s3_bucket}/imagenet/resnet18.safetensors"

    code, printed, _ = command("weights", "download", "resnet18.IMAGENET1K_V1", uri)

    assert code == 0
    assert f"model.backbone=resnet18 model.weights={uri}" in printed
    keys = [o["Key"] for o in s3_client.list_objects_v2(Bucket=s3_bucket)["Contents"]]
    assert sorted(keys) == ["imagenet/resnet18.safetensors", "imagenet/resnet18.safetensors.sha256"]
    model = make_finetune(backbone="resnet18", weights=uri)
    assert torch.equal(model.backbone.layer4[1].bn2.bias, cached_resnet18["layer4.1.bn2.bias"])

    cached_resnet18["fc.bias"] += 1
    other = save({k: v.contiguous() for k, v in cached_resnet18.items()})
    s3_client.put_object(Bucket=s3_bucket, Key="imagenet/resnet18.safetensors", Body=other)
    with pytest.raises(ConfigError, match=f"does not match its checksum record {uri}.sha256"):
        make_finetune(backbone="resnet18", weights=uri)


def test_without_internet_torchvision_s_download_fails_and_leaves_dest_as_it_was(
    command, tmp_path, monkeypatch
):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-torch-home"))
    for var in ("https_proxy", "HTTPS_PROXY"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")  # every HTTPS request: a closed port
    for var in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(var, raising=False)
    dest = tmp_path / "weights" / "resnet50.pth"
    dest.parent.mkdir()
    dest.write_bytes(b"the good file")

    code, _, logged = command("weights", "download", "resnet50.IMAGENET1K_V2", str(dest))

    assert code == 65
    assert HINT.format(name="resnet50.IMAGENET1K_V2") in logged
    assert dest.read_bytes() == b"the good file"
    assert [p.name for p in dest.parent.iterdir()] == ["resnet50.pth"]  # nothing partial


def test_a_name_neither_library_knows_is_refused(command, tmp_path):
    code, _, logged = command("weights", "download", "resnet51", str(tmp_path / "w.pth"))
    assert code == 65
    assert "model.backbone='resnet51' is neither torchvision's" in logged
    assert list(tmp_path.iterdir()) == []


# -- timm: over HTTP from a hub on 127.0.0.1, in subprocesses that read HF_ENDPOINT

REPO = "timm/test_resnet.r160_in1k"  # where timm finds test_resnet's pretrained weights


@pytest.fixture
def served(hub) -> dict[str, torch.Tensor]:
    """test_resnet's pretrained weights on the hub: a randomly initialised test_resnet's."""
    torch.manual_seed(0)
    state = timm.create_model("test_resnet").state_dict()
    hub.serve(REPO, "model.safetensors", save(state))
    return state


def run(tmp_path: Path, env: dict[str, str], *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        inat_command(*args),
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@pytest.mark.slow
def test_timm_weights_come_from_the_hub_into_a_file(hub, served, hub_env, make_finetune, tmp_path):
    dest = tmp_path / "test_resnet.safetensors"

    done = run(tmp_path, hub_env(hub.url), "weights", "download", "test_resnet", str(dest))
    output = done.communicate(timeout=300)[0]

    assert done.returncode == 0, output
    assert same(load_file(dest), served)
    assert Path(f"{dest}.sha256").read_text() == f"{sha256(dest)}  {dest.name}\n"
    assert f"GET /{REPO}/resolve/main/model.safetensors" in hub.requests
    assert f"model.backbone=test_resnet model.weights={dest}" in output

    model = make_finetune(backbone="test_resnet", weights=str(dest), image_size=32)
    loaded = model.backbone.state_dict()
    assert same(loaded, {k: v for k, v in served.items() if not k.startswith("fc.")})


@pytest.mark.slow
def test_a_run_downloads_timm_weights_from_the_hub_where_there_is_one(
    hub, served, hub_env, tmp_path
):
    args = [
        "train",
        *location(tmp_path),
        *TINY_DATA,
        "name=hub",
        "model=finetune",
        "model.backbone=test_resnet",
        "model.weights=pretrained",
        "trainer.epochs=1",
    ]
    done = run(tmp_path, hub_env(hub.url), *args)
    output = done.communicate(timeout=300)[0]

    assert done.returncode == 0, output
    ckpts = CheckpointManager(LocalStorage(tmp_path / "out" / "hub" / "checkpoints"))
    trained = ckpts.load(ckpts.latest())["model"]
    backbone = {k.removeprefix("backbone."): v for k, v in trained.items() if "backbone." in k}
    # strategy=head: the backbone is the hub's weights, unchanged
    assert same(backbone, {k: v for k, v in served.items() if not k.startswith("fc.")})


@pytest.mark.slow
def test_without_a_hub_download_and_run_exit_65_saying_what_to_do(hub_env, closed_port, tmp_path):
    env = hub_env(f"http://127.0.0.1:{closed_port}")
    dest = tmp_path / "test_resnet.pth"
    train = ["train", *location(tmp_path), *TINY_DATA, "model=finetune",
             "model.backbone=test_resnet", "model.weights=pretrained"]  # fmt: skip
    # Both at once: huggingface_hub retries a refused connection for a while before it gives up.
    processes = [run(tmp_path, env, "weights", "download", "test_resnet", str(dest)),
                 run(tmp_path, env, *train)]  # fmt: skip
    outputs = [process.communicate(timeout=300)[0] for process in processes]

    for process, output in zip(processes, outputs, strict=True):
        assert process.returncode == 65, output
        assert "cannot download the pretrained weights of test_resnet from the Hugging Face " in (
            output
        )
        assert HINT.format(name="test_resnet") in output
        assert "pass model.weights=DEST" in output
    assert not dest.exists()
