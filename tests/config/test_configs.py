"""The typed configs: every group option, experiment and job point composes through the
schemas; a bad key or value fails at compose time with one message and exit code 65."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest
import yaml
from helpers.runs import TINY, location, run_inat
from omegaconf import OmegaConf

from inat.compose import compose
from inat.config_help import annotated
from inat.errors import ConfigError, ExitCode
from inat.results.configs import CONFIG_DIR
from inat.schema import TRACKERS
from inat.sweeps.jobs import expand, load_job
from inat.sweeps.run import compose_all, is_adaptive, probe_points, run_point

GROUPS = ("data", "model", "optimizer", "scheduler", "trainer", "storage", "logger")
OPTIONS = [(g, p.stem) for g in GROUPS for p in sorted((CONFIG_DIR / g).glob("*.yaml"))]
EXPERIMENTS = sorted(p.stem for p in (CONFIG_DIR / "experiment").glob("*.yaml"))
JOBS = sorted((Path(__file__).parents[2] / "jobs").glob("*.yaml"))


def _error(*overrides: str) -> str:
    with pytest.raises(ConfigError) as caught:
        compose(overrides)
    assert caught.value.exit_code == ExitCode.BAD_INPUT
    return str(caught.value)


@pytest.mark.parametrize(("group", "option"), OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_every_group_option_composes_typed_by_its_schema(group, option):
    # model=finetune needs an image size its backbone takes; the default's 32 is one.
    cfg = compose([f"{group}={option}"])
    assert dataclasses.is_dataclass(OmegaConf.get_type(cfg[group]))


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_composes_with_its_values(experiment):
    cfg = compose([f"experiment={experiment}"])
    own = OmegaConf.load(CONFIG_DIR / "experiment" / f"{experiment}.yaml")
    for group in ("data", "model", "optimizer", "trainer"):
        assert OmegaConf.masked_copy(cfg[group], list(own[group])) == own[group]


@pytest.mark.parametrize("job_file", JOBS, ids=[p.stem for p in JOBS])
def test_every_point_of_every_job_file_composes(job_file):
    job = load_job(job_file)
    if is_adaptive(job):  # each key at each of its values (a range: its ends)
        assert len(compose_all(job, [])) == len(probe_points(job)) > len(job["sweep"]["parameters"])
    else:
        assert len(compose_all(job, [])) == len(expand(job))


@pytest.mark.parametrize(
    ("override", "suggestion"),
    [
        ("optimizer.lrr=0.1", "did you mean optimizer.lr?"),
        ("optimzer.lr=0.1", "did you mean optimizer.lr?"),
        ("data.synthetic.seedd=1", "did you mean data.synthetic.seed?"),
        ("+trainer.epoch=3", "did you mean trainer.epochs?"),
        ("storage.endpoint=http://minio:9000", "did you mean storage.endpoint_url?"),
    ],
)
def test_an_unknown_key_names_the_closest_valid_one(override, suggestion):
    message = _error(override)
    assert message.startswith(f"{override.lstrip('+').split('=')[0]} is not a config key: ")
    assert suggestion in message
    assert "+" not in message  # not Hydra's advice to append the key


def test_an_unknown_key_without_a_close_one_lists_the_keys():
    message = _error("scheduler=onecycle", "scheduler.warmup_epochs=1")
    assert "scheduler.warmup_epochs is not a config key: scheduler takes name, pct_start" in message


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("data.batch_size=abc", "data.batch_size='abc' is not allowed: use an integer >= 1."),
        ("optimizer.lr=fast", "optimizer.lr='fast' is not allowed: use a finite number > 0."),
        ("trainer.cpu=maybe", "trainer.cpu='maybe' is not allowed: use true or false."),
        ("data.max_bad_fraction=abc", "data.max_bad_fraction='abc' is not allowed"),
        (
            "model.filters=[a,b,c,d,e]",
            "model.filters[0]='a' is not allowed: use a list of 5 integers >= 1 for model.filters.",
        ),
    ],
)
def test_a_wrong_type_names_the_key_and_what_is_allowed(override, message):
    assert message in _error(override)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["optimizer.lr=inf"], "optimizer.lr=inf is not allowed: use a finite number > 0."),
        (["optimizer.lr=0"], "optimizer.lr=0.0 is not allowed"),
        (["optimizer=sgd", "optimizer.lr=-1"], "optimizer.lr=-1.0 is not allowed"),
        (
            ["data.max_bad_fraction=-1"],
            "data.max_bad_fraction=-1.0 is not allowed: use a number in [0, 1).",
        ),
        (["data.max_bad_fraction=2"], "data.max_bad_fraction=2.0 is not allowed"),
        (["data.max_bad_fraction=1"], "data.max_bad_fraction=1.0 is not allowed"),
        (["data.val_fraction=0"], "data.val_fraction=0.0 is not allowed: use a number in (0, 1)."),
        (
            ["data.num_workers=-1"],
            "data.num_workers=-1 is not allowed: use auto or an integer >= 0.",
        ),
        (["data.num_workers=many"], "data.num_workers='many' is not allowed"),
        (["data.num_classes=1"], "data.num_classes=1 is not allowed: use an integer >= 2."),
        (["data.image_size=0"], "data.image_size=0 is not allowed"),
        (
            ["data.image_size=16"],
            "data.image_size=16 is not allowed: use an integer >= 32 (every model halves the "
            "image 5 times)",
        ),
        (
            ["data.pipeline=prepare"],
            "data.pipeline='prepare' is not allowed: use one of prepared, images.",
        ),
        (["data.synthetic.image_side=8"], "data.synthetic.image_side=8 is not allowed"),
        (
            ["data.synthetic.train_per_class=1"],
            "data.synthetic.train_per_class=1 is not allowed: use an integer >= 2.",
        ),
        (
            ["model.activation=swish"],
            "model.activation='swish' is not allowed: use one of relu, gelu",
        ),
        (["model.dropout=1"], "model.dropout=1.0 is not allowed: use a number in [0, 1)."),
        (
            ["model.filters=[32,64,128,256]"],
            "model.filters=[32, 64, 128, 256] is not allowed: use a list of 5",
        ),
        (["model.filters=[32,0,64,64,64]"], "model.filters=[32, 0, 64, 64, 64] is not allowed"),
        (["model.kernel_size=4"], "model.kernel_size=4 is not allowed: use an odd integer >= 1"),
        (["model.kernel_size=[3,3]"], "model.kernel_size=[3, 3] is not allowed"),
        (["model.dense_neurons=0"], "model.dense_neurons=0 is not allowed"),
        # A name neither library knows is refused where the model is built: tests/models.
        (
            ["model=finetune", "model.backbone="],
            "model.backbone='' is not allowed: use one of resnet18,",
        ),
        (
            ["model=finetune", "model.strategy=partial"],
            "model.strategy='partial' is not allowed: use one of head, last_k, full.",
        ),
        (["model=finetune", "model.last_k=0"], "model.last_k=0 is not allowed"),
        (
            ["model=finetune", "model.backbone_lr_scale=0"],
            "model.backbone_lr_scale=0.0 is not allowed",
        ),
        (["trainer.epochs=0"], "trainer.epochs=0 is not allowed: use an integer >= 1."),
        (
            ["trainer.mixed_precision=fp8"],
            "trainer.mixed_precision='fp8' is not allowed: use one of no, fp16, bf16.",
        ),
        (["trainer.grad_clip_norm=0"], "trainer.grad_clip_norm=0.0 is not allowed: use null or"),
        (["trainer.label_smoothing=1"], "trainer.label_smoothing=1.0 is not allowed"),
        (["trainer.early_stopping_patience=0"], "trainer.early_stopping_patience=0 is not allowed"),
        (
            ["trainer.cache_features=maybe"],
            "trainer.cache_features='maybe' is not allowed: use auto, true or false.",
        ),
        (["scheduler.name=linear"], "scheduler.name='linear' is not allowed: use cosine."),
        (
            ["scheduler.min_lr_ratio=2"],
            "scheduler.min_lr_ratio=2.0 is not allowed: use a number in [0, 1].",
        ),
        (["scheduler=onecycle", "scheduler.pct_start=0"], "scheduler.pct_start=0.0 is not allowed"),
        (
            ["storage.max_attempts=0"],
            "storage.max_attempts=0 is not allowed: use null or an integer >= 1.",
        ),
        (["storage.read_timeout=0"], "storage.read_timeout=0.0 is not allowed"),
        (["storage.connect_timeout=-1"], "storage.connect_timeout=-1.0 is not allowed"),
        (
            ["storage.retry_mode=eager"],
            "storage.retry_mode='eager' is not allowed: use one of standard, adaptive, legacy",
        ),
        (["storage.addressing_style=dns"], "storage.addressing_style='dns' is not allowed"),
        (["output="], "output='' is not allowed: use a local folder or s3:// URI."),
        (["run_dir=${nope}"], "run_dir: Interpolation key 'nope' not found"),
    ],
)
def test_a_value_out_of_range_names_the_key_and_what_is_allowed(overrides, message):
    assert message in _error(*overrides)


@pytest.mark.parametrize(
    "overrides",
    [
        ["data.image_size=31"],
        ["data.image_size=0"],
    ],
)
def test_the_help_states_what_the_check_refuses(overrides):
    # The words after "use" in the error are in the key's line of `inat train --help`.
    key, _ = overrides[-1].split("=")
    refused = re.fullmatch(rf"{re.escape(key)}=.* is not allowed: use (.*)\.", _error(*overrides))
    [line] = [
        line
        for line in annotated(compose(overrides[:-1])).splitlines()
        if line.startswith(f"  {key.split('.')[-1]}: ")
    ]
    assert refused[1] in line.split("# ", 1)[1]


def test_allowed_edge_values_compose():
    compose(
        [
            "data.max_bad_fraction=0",
            "data.num_workers=auto",
            "model.kernel_size=[3,5,7,3,1]",
            "trainer.grad_clip_norm=null",
            "trainer.cache_features=true",
            "storage.retry_mode=null",
            "storage.max_attempts=null",
        ]
    )


def test_an_unknown_group_option_lists_the_options():
    message = _error("model=cnn")
    assert (
        message == "model=cnn is not an option of the model group: use one of finetune, scratch_cnn"
    )
    assert "did you mean experiment=original_scratch?" in _error("experiment=original_scratc")


def test_inat_train_exits_65_with_one_message_before_anything_is_written(tmp_path):
    done = run_inat(tmp_path, "train", *location(tmp_path), "optimizer.lrr=0.1")
    assert done.returncode == ExitCode.BAD_INPUT, done.stderr
    output = done.stdout + done.stderr
    assert "optimizer.lrr is not a config key: did you mean optimizer.lr?" in output
    assert "HYDRA_FULL_ERROR" not in output and "+optimizer" not in output
    assert "Traceback" not in output
    done = run_inat(tmp_path, "train", *TINY, *location(tmp_path), "optimizer.lr=inf")
    assert done.returncode == ExitCode.BAD_INPUT, done.stderr
    assert "optimizer.lr=inf is not allowed: use a finite number > 0." in done.stdout
    assert not (tmp_path / "out").exists() and not (tmp_path / "cache").exists()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            "optimizer:\n  lrr: 0.1\n",
            "in experiment/mine: optimizer.lrr is not a config key: did you mean optimizer.lr?",
        ),
        (
            "trainer:\n  epochs: many\n",
            "in experiment/mine: trainer.epochs='many' is not allowed: use an integer >= 1.",
        ),
        ("model:\n  dropout: 1.5\n", "model.dropout=1.5 is not allowed: use a number in [0, 1)."),
    ],
)
def test_a_bad_key_or_value_in_an_experiment_file_is_named_with_it(tmp_path, body, message):
    (tmp_path / "configs" / "experiment").mkdir(parents=True)
    (tmp_path / "configs" / "experiment" / "mine.yaml").write_text(f"# @package _global_\n{body}")
    args = ["train", "--config-dir", str(tmp_path / "configs"), "experiment=mine"]
    done = run_inat(tmp_path, *args, *TINY, *location(tmp_path))
    assert done.returncode == ExitCode.BAD_INPUT, done.stderr
    assert message in done.stdout + done.stderr
    assert not (tmp_path / "out").exists()


def _bad_job(tmp_path: Path) -> Path:
    """A sweep of 3 points, 2 of them with a learning rate that is not allowed."""
    job = {
        "job": {
            "name": "bad-sweep",
            "overrides": [*TINY, "trainer.epochs=1"],
            "sweep": {"params": {"optimizer.lr": [0.01, "inf", -1]}},
        }
    }
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(job))
    return path


@pytest.mark.parametrize("listing", [False, True], ids=["sweep", "list"])
def test_a_local_sweep_with_bad_points_trains_nothing(tmp_path, listing):
    args = ["sweep", str(_bad_job(tmp_path)), *location(tmp_path)]
    done = run_inat(tmp_path, *args, *(["--list"] if listing else []))
    assert done.returncode == ExitCode.BAD_INPUT, done.stderr
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert "2 of 3 point(s) of bad-sweep have a bad config; nothing was trained" in lines[0]
    assert lines[1].startswith("point 1 (001-") and "optimizer.lr=inf is not allowed" in lines[1]
    assert lines[2].startswith("point 2 (002-") and "optimizer.lr=-1.0 is not allowed" in lines[2]
    assert len(lines) == 3
    assert not (tmp_path / "out").exists() and not (tmp_path / "cache").exists()
    assert done.stdout == ""


def test_one_point_of_a_cluster_sweep_fails_alone_and_is_recorded(tmp_path):
    # `inat sweep JOB --index N` on Slurm or Kubernetes: the bad point fails, recorded.
    job = load_job(_bad_job(tmp_path))
    with pytest.raises(ConfigError, match=r"optimizer\.lr=inf is not allowed"):
        run_point(job, 1, location(tmp_path))
    point = expand(job)[1]
    result = json.loads((tmp_path / "out" / "bad-sweep" / point.name / "result.json").read_text())
    assert result["status"] == "failed" and "optimizer.lr=inf" in result["error"]


def test_keys_of_a_logger_not_chosen_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"logger.project is not a config key: logger takes csv"):
        compose(["+logger.project=mine"])
    with pytest.raises(ConfigError, match=r"logger.wandb is not chosen.*e.g. logger=wandb or"):
        compose(["logger=mlflow", "logger.wandb.project=mine"])
    with pytest.raises(
        ConfigError, match=r"logger.csv.x is not a config key: logger.csv takes no keys\."
    ):
        compose(["logger=csv", "+logger.csv.x=1"])


def test_logger_null_chooses_no_tracker(tmp_path) -> None:
    assert set(compose(["logger=null"]).logger.values()) == {None}
    shown = run_inat(tmp_path, "train", "logger=null", "--cfg", "job")
    assert shown.returncode == ExitCode.OK, shown.stderr
    assert yaml.safe_load(shown.stdout)["logger"] == dict.fromkeys(TRACKERS)


@pytest.mark.parametrize(("group", "example"), [("model", "finetune"), ("optimizer", "adam")])
def test_keys_of_a_group_left_out_name_an_option_of_that_group(group, example) -> None:
    with pytest.raises(ConfigError, match=rf"choose one first, e\.g\. {group}={example} "):
        compose([f"~{group}", f"+{group}.lr=1"])


def test_several_loggers_compose_each_under_its_own_key() -> None:
    cfg = compose(["logger=[wandb,mlflow]", "logger.wandb.project=mine"])
    assert cfg.logger.wandb.project == "mine" and cfg.logger.mlflow.experiment is None
    assert cfg.logger.tensorboard is None and cfg.logger.csv is None
