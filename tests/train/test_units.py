"""Small pure pieces: point names, redaction, schedules, config checks."""

from __future__ import annotations

import json

import pytest
import torch
from omegaconf import OmegaConf

from inat.compose import compose, validate
from inat.errors import ConfigError
from inat.rundir import config_changes
from inat.secrets import REDACTED, redact
from inat.sweeps.jobs import point_name
from inat.train.describe import describe_model, describe_recipe
from inat.train.optim import build_scheduler, resume_scheduler
from inat.train.state import TrainState


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


def test_config_changes_names_what_is_trained_and_ignores_locations():
    old = {
        "name": "a",
        "output": "/x",
        "optimizer": {"lr": 0.1},
        "model": {"filters": [8, 16]},
        "storage": {"max_attempts": 3},
        "trainer": {"epochs": 2, "log_every_n_steps": 5},
    }
    new = {
        "name": "b",
        "output": "s3://bucket/runs",
        "optimizer": {"lr": 0.01},
        "model": {"filters": [8, 32]},
        "storage": {"max_attempts": 10},
        "trainer": {"epochs": 4, "log_every_n_steps": 50},
        "logger": {"project": "inat"},
        "seed": 1,
    }
    assert config_changes(old, new) == [
        "model.filters: [8, 16] -> [8, 32]",
        "optimizer.lr: 0.1 -> 0.01",
        "seed: (unset) -> 1",
    ]
    assert config_changes(old, old) == []


def test_train_state_round_trips_through_a_plain_dict():
    state = TrainState(epoch=3, step=60, best_epoch=2, history=[{"epoch": 1}])
    saved = state.state_dict()
    assert json.loads(json.dumps(saved)) == saved  # numbers, strings and lists only
    restored = TrainState()
    restored.load_state_dict({**saved, "unknown_key": 1})
    assert restored == state
    older = TrainState()
    older.load_state_dict({"epoch": 1})  # a checkpoint without the newer keys
    assert older.epoch == 1 and older.stop_status is None


def _schedule(
    name: str, epochs: int
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    cfg = {"name": name, "warmup_epochs": 0, "min_lr_ratio": 0.0, "pct_start": 0.3}
    return opt, build_scheduler(OmegaConf.create(cfg), opt, steps_per_epoch=2, epochs=epochs)


@pytest.mark.parametrize("name", ["cosine", "onecycle"])
def test_a_resumed_schedule_continues_its_step_and_follows_more_epochs(name):
    opt, scheduler = _schedule(name, epochs=2)
    for _ in range(4):  # the whole schedule of 2 epochs
        opt.step()
        scheduler.step()
    saved_opt, saved = opt.state_dict(), scheduler.state_dict()

    same_opt, same = _schedule(name, epochs=2)
    same_opt.load_state_dict(saved_opt)
    resume_scheduler(same, saved)
    assert same.state_dict() == saved

    more_opt, more = _schedule(name, epochs=4)
    more_opt.load_state_dict(saved_opt)
    resume_scheduler(more, saved)
    assert more.last_epoch == 4
    for _ in range(4):  # steps past the old total: the new schedule has them
        more_opt.step()
        more.step()
    fresh_opt, fresh = _schedule(name, epochs=4)
    for _ in range(8):
        fresh_opt.step()
        fresh.step()
    assert more.get_last_lr() == pytest.approx(fresh.get_last_lr())


def test_the_log_block_names_backbone_weights_and_strategy_without_secrets():
    finetune = {
        "_target_": "inat.models.FineTuneModel",
        "backbone": "convnext_tiny",
        "strategy": "last_k",
        "last_k": 2,
        "weights": "https://user:hunter2@example.org/convnext.pth",
    }
    line = describe_model(OmegaConf.create({"model": finetune}))
    assert line == (
        "FineTuneModel: backbone convnext_tiny, weights https://***@example.org/convnext.pth, "
        "fine-tune last_k (the last 2 stage(s) and the head)"
    )
    random_init = OmegaConf.create({"model": {**finetune, "strategy": "full", "weights": None}})
    assert describe_model(random_init).endswith("weights none (random init), fine-tune full")


def test_the_log_block_says_which_parts_of_the_recipe_are_on():
    assert describe_recipe(compose([])) == "plain"
    strong = compose(["experiment=strong_finetune"])
    assert describe_recipe(strong) == (
        "augment randaugment (2 ops, magnitude 9), random erasing 0.25, mixup 0.2 / cutmix 1 "
        "on 100% of the batches, label smoothing 0.1, weights averaged (EMA 0.999), layer "
        "decay 0.7, head alone for 1 epoch(s), then a stage every 1, test-time augmentation flip"
    )
    assert describe_recipe(compose(["data.augment=true"])) == "augment basic"
