from __future__ import annotations

import pytest
import torch
from torchvision.models import resnet18

from inat.errors import ConfigError


@pytest.fixture
def resnet18_state(tmp_path):
    """A randomly initialised resnet18's state dict (ImageNet head included) and its file."""
    torch.manual_seed(0)
    state = resnet18().state_dict()
    path = tmp_path / "resnet18.pt"
    torch.save(state, path)
    return path, state


def test_backbone_gets_the_weights_of_the_file(make_finetune, resnet18_state):
    path, saved = resnet18_state
    model = make_finetune(backbone="resnet18", weights=str(path))
    loaded = model.backbone.state_dict()

    assert set(saved) - set(loaded) == {"fc.weight", "fc.bias"}  # the replaced ImageNet head
    assert all(torch.equal(tensor, saved[key]) for key, tensor in loaded.items())


def test_missing_and_unexpected_keys_are_named(make_finetune, resnet18_state, tmp_path):
    _, state = resnet18_state
    state["extra.weight"] = state.pop("layer1.0.conv1.weight")
    path = tmp_path / "renamed.pt"
    torch.save(state, path)

    with pytest.raises(ConfigError) as info:
        make_finetune(backbone="resnet18", weights=str(path))
    message = str(info.value)
    assert f"model.weights='{path}' does not fit resnet18" in message
    assert "1 missing keys (layer1.0.conv1.weight)" in message
    assert "1 unexpected keys (extra.weight)" in message


def test_a_fine_tuned_head_is_a_shape_mismatch(make_finetune, resnet18_state, tmp_path):
    _, state = resnet18_state
    state["fc.weight"], state["fc.bias"] = torch.zeros(10, 512), torch.zeros(10)
    path = tmp_path / "ten-classes.pt"
    torch.save(state, path)

    with pytest.raises(ConfigError, match=r"fc\.weight \(10, 512\) instead of \(1000, 512\)"):
        make_finetune(backbone="resnet18", weights=str(path))


def test_another_architecture_does_not_fit(make_finetune, resnet18_state):
    path, _ = resnet18_state
    with pytest.raises(ConfigError, match=r"missing keys \(.*\) and \d+ more"):
        make_finetune(backbone="resnet50", weights=str(path))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"not a checkpoint", "is not a readable state dict"),
        ({"model": {}, "epoch": 3}, "holds a dict with keys ['model', 'epoch'], not a state dict"),
        ([torch.zeros(1)], "holds a list, not a state dict"),
    ],
)
def test_a_file_that_is_not_a_state_dict(make_finetune, tmp_path, content, message):
    path = tmp_path / "weights.pt"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        torch.save(content, path)
    with pytest.raises(ConfigError) as info:
        make_finetune(backbone="resnet18", weights=str(path))
    assert f"model.weights='{path}'" in str(info.value)
    assert message in str(info.value)


def test_neither_a_weights_name_nor_a_file(make_finetune, tmp_path):
    with pytest.raises(ConfigError) as info:
        make_finetune(backbone="resnet18", weights="IMAGENET1K_V9")
    assert "model.weights='IMAGENET1K_V9' is neither a torchvision weights name of resnet18 " in (
        str(info.value)
    )
    assert "(IMAGENET1K_V1, DEFAULT)" in str(info.value)


def test_a_weights_name_without_internet_says_how_to_get_the_weights(
    make_finetune, tmp_path, monkeypatch
):
    # Nothing cached, and every HTTPS request goes to a closed local port: no internet.
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    for var in ("https_proxy", "HTTPS_PROXY"):
        monkeypatch.setenv(var, "http://127.0.0.1:9")
    for var in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(var, raising=False)

    with pytest.raises(ConfigError) as info:  # exit code 65: a retry cannot succeed
        make_finetune(backbone="resnet18", weights="DEFAULT")
    message = str(info.value)
    assert "cannot download the pretrained weights of resnet18 from https://" in message
    assert "run `inat weights download resnet18 DEST` once" in message
    assert "pass model.weights=DEST" in message

    with pytest.raises(ConfigError) as info:
        make_finetune(backbone="resnet18", weights="IMAGENET1K_V1")
    assert "`inat weights download resnet18.IMAGENET1K_V1 DEST`" in str(info.value)


def test_weights_from_s3(make_finetune, resnet18_state, s3_client, s3_bucket):
    path, saved = resnet18_state
    s3_client.upload_file(str(path), s3_bucket, "imagenet/resnet18.pt")
    model = make_finetune(backbone="resnet18", weights=f"s3://{s3_bucket}/imagenet/resnet18.pt")
    assert torch.equal(model.backbone.conv1.weight, saved["conv1.weight"])
    with pytest.raises(ConfigError, match="does not exist"):
        make_finetune(backbone="resnet18", weights=f"s3://{s3_bucket}/imagenet/missing.pt")
