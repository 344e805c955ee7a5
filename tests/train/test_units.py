"""Small pure pieces: point names, redaction, schedules, config checks."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from inat.config import validate
from inat.errors import ConfigError
from inat.secrets import REDACTED, redact
from inat.sweeps.jobs import point_name
from inat.train.optim import build_scheduler


def test_point_name_is_a_pure_function_of_index_and_overrides():
    a = point_name(3, ["optimizer.lr=0.01", "model.dropout=0.3"])
    assert a == point_name(3, ["optimizer.lr=0.01", "model.dropout=0.3"])
    assert a.startswith("003-optimizer.lr=0.01,model.dropout=0.3-")
    assert a != point_name(3, ["optimizer.lr=0.02", "model.dropout=0.3"])
    assert point_name(0, []) == point_name(0, [])
    assert "/" not in point_name(1, ["model.filters=[32,64]", "data.source=s3://b/k"])


def test_redact_hides_secret_keys_and_url_passwords():
    cfg = {
        "aws_secret_access_key": "abc",
        "nested": {"wandb_api_key": "k", "lr": 0.1},
        "source": "https://user:hunter2@example.org/data.zip",
        "items": [{"token": "t"}],
    }
    out = redact(cfg)
    assert out["aws_secret_access_key"] == REDACTED
    assert out["nested"] == {"wandb_api_key": REDACTED, "lr": 0.1}
    assert "hunter2" not in out["source"] and out["source"].endswith("@example.org/data.zip")
    assert out["items"] == [{"token": REDACTED}]


@pytest.mark.parametrize(
    ("sched", "expected"),
    [
        ({"name": "constant", "warmup_epochs": 0}, [1.0, 1.0, 1.0, 1.0]),
        ({"name": "constant", "warmup_epochs": 1}, [0.5, 1.0, 1.0, 1.0]),
        ({"name": "cosine", "warmup_epochs": 0, "min_lr_ratio": 0.0}, [1.0, 0.5, 0.0, 0.0]),
    ],
)
def test_schedules_per_step(sched, expected):
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = build_scheduler(OmegaConf.create(sched), opt, steps_per_epoch=2, epochs=1)
    lrs = []
    for _ in expected:
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        scheduler.step()
    assert lrs == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("trainer.mixed_precision", "fp8", "trainer.mixed_precision='fp8' is not allowed"),
        ("trainer.epochs", 0, "trainer.epochs=0"),
        ("trainer.max_nonfinite_steps", 0, "trainer.max_nonfinite_steps=0"),
        ("data.val_fraction", 1.5, "data.val_fraction=1.5"),
        ("scheduler.name", "step", "scheduler.name='step'"),
        ("optimizer.lr", -1, "optimizer.lr=-1"),
    ],
)
def test_validate_names_the_key_and_what_is_allowed(tiny_cfg, key, value, message):
    cfg = tiny_cfg()
    OmegaConf.update(cfg, key, value)
    with pytest.raises(ConfigError, match="use ") as err:
        validate(cfg)
    assert message in str(err.value)
