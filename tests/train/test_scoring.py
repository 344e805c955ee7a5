"""Top-5 accuracy and test-time augmentation, checked against their definitions."""

from __future__ import annotations

import torch
from accelerate import Accelerator
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from inat.train.scoring import evaluate, with_tta


class _Asymmetric(nn.Module):
    """Logits that differ for an image and its mirror image: a linear map of the pixels."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.linear = nn.Linear(3 * 4 * 4, num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.linear(images.flatten(1))


def _data(n: int, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    images = torch.randn(n, 3, 4, 4, generator=generator)
    return images, torch.randint(num_classes, (n,), generator=generator)


def test_flip_tta_is_the_mean_of_the_probabilities_of_an_image_and_its_mirror():
    model = _Asymmetric(7)
    images, _ = _data(16, 7)
    expected = (model(images).softmax(1) + model(images.flip(-1)).softmax(1)) / 2
    assert not torch.allclose(model(images).softmax(1), expected)  # the flip changes something
    scored = with_tta(model, "flip")(images)
    torch.testing.assert_close(scored.softmax(1), expected)
    torch.testing.assert_close(scored.exp().sum(1), torch.ones(16))  # log-probabilities
    assert with_tta(model, "none") is model


def test_evaluate_reports_top5_and_the_loss_of_the_averaged_prediction():
    model = _Asymmetric(8)
    images, labels = _data(40, 8)
    loader = DataLoader(TensorDataset(images, labels), batch_size=16)
    result = evaluate(model, loader, Accelerator(cpu=True), 8, tta="flip")

    probs = (model(images).softmax(1) + model(images.flip(-1)).softmax(1)) / 2
    top5 = probs.topk(5, dim=1).indices
    assert result.top5_accuracy == (top5 == labels[:, None]).any(1).float().mean().item()
    assert result.accuracy == (probs.argmax(1) == labels).float().mean().item()
    nll = -probs.gather(1, labels[:, None]).log().mean().item()
    assert abs(result.loss - nll) < 1e-5
    assert result.top5_accuracy > result.accuracy  # a different number, not a copy


def test_top5_is_left_out_with_five_classes_or_fewer():
    images, labels = _data(20, 5)
    loader = DataLoader(TensorDataset(images, labels), batch_size=8)
    result = evaluate(_Asymmetric(5), loader, Accelerator(cpu=True), 5)
    assert result.top5_accuracy is None
