"""The help of `inat launch` and `inat train`, and the backbones every document lists."""

from __future__ import annotations

import re
from pathlib import Path

from helpers.runs import run_inat

import inat
from inat import schema
from inat.config_help import yaml_comments
from inat.launch import SHOWN_OPTIONS
from inat.models.backbones import BACKBONES

README = Path(inat.__file__).parents[1] / "docs" / "configs.md"
FINETUNE_YAML = Path(inat.__file__).parent / "configs" / "model" / "finetune.yaml"


def test_launch_help_shows_accelerates_options_and_no_training_script(tmp_path):
    done = run_inat(tmp_path, "launch", "--help")

    assert done.returncode == 0, done.stderr
    shown = done.stdout
    for option in ("--multi_gpu", "--num_processes", "--num_machines", "--machine_rank"):
        assert option in SHOWN_OPTIONS
    for option in SHOWN_OPTIONS:
        assert re.search(rf"^\s+{option}\b", shown, re.MULTILINE), option
    assert "training_script" not in shown and "python script" not in shown
    assert "usage: inat launch [ACCELERATE LAUNCH OPTIONS] COMMAND [ARGS...]" in shown
    assert "`accelerate launch --help`" in shown
    assert "trainer.mixed_precision" in shown and "--mixed_precision does not" in shown


def _key_line(text: str, key: str) -> str:
    [line] = [line for line in text.splitlines() if line.startswith(f"  {key}: ")]
    return line


def test_train_help_shows_each_keys_value_comment_and_allowed_values(tmp_path):
    done = run_inat(tmp_path, "train", "model=finetune", "--help")

    assert done.returncode == 0, done.stderr
    comments = yaml_comments(FINETUNE_YAML)
    for key in ("backbone", "strategy", "last_k", "weights", "backbone_lr_scale", "dropout"):
        assert f"# {comments[key]}" in _key_line(done.stdout, key)
    backbones = ", ".join(schema.BACKBONES)
    allowed = f"; allowed: one of {backbones} (torchvision's), or a timm model name"
    assert allowed in _key_line(done.stdout, "backbone")
    assert _key_line(done.stdout, "strategy").endswith("; allowed: one of head, last_k, full")
    assert (
        _key_line(done.stdout, "betas") == "  betas: [0.9, 0.999]  # allowed: two numbers in [0, 1)"
    )
    assert "run_dir: ${output}/${name}  # this run's directory" in done.stdout


def test_the_readme_and_the_config_list_the_backbones_the_code_accepts():
    accepted = list(BACKBONES)
    assert accepted == list(schema.BACKBONES)
    torchvision = re.search(r"torchvision's:? ([^;]*);", yaml_comments(FINETUNE_YAML)["backbone"])
    in_config = [name.strip() for name in torchvision[1].split("|")]
    assert in_config == accepted
    [line] = [line for line in README.read_text().splitlines() if "finetune (" in line]
    in_readme = re.search(r"finetune \(([^)]*)\)", line)[1].split(", ")
    assert in_readme == accepted


def test_train_help_lists_the_groups_to_choose_and_says_how_to_see_another_options_keys(
    tmp_path,
):
    done = run_inat(tmp_path, "train", "--help")

    assert done.returncode == 0, done.stderr
    groups = done.stdout.split("== Configuration groups ==")[1].split("== Config ==")[0]
    listed = [line.split(":")[0] for line in groups.splitlines() if ": " in line]
    assert listed == [
        "data", "experiment", "logger", "model", "optimizer", "scheduler", "storage", "trainer"
    ]  # fmt: skip
    assert "schema" not in groups
    assert "inat train model=finetune --help" in done.stdout
    # A tracker's section in words, not a type name.
    assert "  wandb: null  # allowed: null (off), or its keys once" in done.stdout
    assert "WandbConfig" not in done.stdout
