"""`inat lr-find`: the learning-rate range test on tiny generated data, in this process."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from helpers.runs import TINY_DATA, TINY_MODEL, compose_cfg
from PIL import Image

from inat.cli import main
from inat.models import build_model
from inat.train.lr_find import DIVERGE, LrFindResult, lr_find, report, set_lr, write_plot
from inat.train.optim import build_optimizer

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One data cache for the module: the generated images are made once."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def to_the_end(tmp_path_factory: pytest.TempPathFactory, cache: Path) -> LrFindResult:
    """A range test of Adam up to lr 1, where the tiny CNN's loss does not blow up."""
    cfg = compose_cfg(tmp_path_factory.mktemp("run"), f"data.cache_dir={cache}", "optimizer=adam")
    return lr_find(cfg, start=1e-5, end=1.0, steps=25)


def test_the_curve_has_a_point_per_step_from_start_to_end(to_the_end):
    result = to_the_end
    assert not result.diverged
    assert "reached --end" in result.stopped
    assert len(result.lrs) == len(result.losses) == len(result.smoothed) == 25
    assert result.lrs[0] == 1e-5
    assert result.lrs[-1] == pytest.approx(1.0)
    factors = [b / a for a, b in zip(result.lrs, result.lrs[1:], strict=False)]
    assert factors == pytest.approx([10 ** (5 / 24)] * 24)
    assert all(math.isfinite(loss) and loss > 0 for loss in result.losses)


def test_the_suggestion_is_a_tenth_of_the_lowest_smoothed_loss_inside_the_range(to_the_end):
    result = to_the_end
    # The first 10% of the steps (2 of 25) are left out of the search.
    assert result.smoothed[result.lowest] == min(result.smoothed[2:])
    assert result.suggestion == pytest.approx(result.lrs[result.lowest] / 10)
    assert result.lrs[0] <= result.suggestion < result.lrs[-1]
    assert result.override == f"optimizer.lr={result.suggestion:.2g}"
    assert report(result, "lr-find.png").splitlines()[-1].endswith(result.override)


def test_a_huge_end_lr_diverges_and_stops_early(tmp_path, cache):
    cfg = compose_cfg(tmp_path, f"data.cache_dir={cache}", "optimizer=sgd")
    result = lr_find(cfg, start=1e-4, end=1e6, steps=40)
    assert result.diverged
    assert result.stopped.startswith("diverged at lr")
    assert 2 <= len(result.lrs) == len(result.losses) == len(result.smoothed) < 40
    # The curve ends at the step that diverged, unless its loss was not even finite.
    assert result.smoothed[-1] > DIVERGE * min(result.smoothed) or "not finite" in result.stopped
    assert result.lrs[0] <= result.suggestion < result.lrs[-1]


def test_each_param_group_keeps_its_lr_scale(tmp_path):
    cfg = compose_cfg(
        tmp_path,
        "model=finetune",
        "model.backbone=resnet18",
        "model.weights=null",
        "model.strategy=full",
        "model.backbone_lr_scale=0.1",
        base=TINY_DATA,
    )
    model = build_model(cfg.model, cfg.data.num_classes, cfg.data.image_size)
    optimizer = build_optimizer(cfg.optimizer, model.param_groups())
    set_lr(optimizer, 0.5)
    lrs = {group["name"]: group["lr"] for group in optimizer.param_groups}
    assert lrs == {"backbone": pytest.approx(0.05), "head": pytest.approx(0.5)}


def test_the_plot_is_a_png(tmp_path, to_the_end):
    written = write_plot(to_the_end, str(tmp_path / "curve.png"))
    assert written == str(tmp_path / "curve.png")
    assert (tmp_path / "curve.png").read_bytes()[:8] == PNG_SIGNATURE
    with Image.open(tmp_path / "curve.png") as image:
        assert image.format == "PNG" and min(image.size) > 300


def test_the_command_prints_json_and_writes_only_the_plot(tmp_path, cache, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # `output` is left at its default: outputs/ in here
    args = [*TINY_DATA, *TINY_MODEL, f"data.cache_dir={cache}"]
    options = ["--start", "1e-5", "--end", "1", "--steps", "12", "--json"]
    # Overrides may follow the options too, as with inat sweep.
    code = main(["lr-find", *args, *options, "optimizer=adam"])
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["steps_run"] == len(printed["lrs"]) == len(printed["losses"]) == 12
    assert printed["override"] == f"optimizer.lr={printed['suggestion']:.2g}"
    assert printed["plot"] == str(tmp_path / "lr-find.png")
    # No outputs/ folder nor any run directory: the plot is all it wrote.
    assert [p.name for p in tmp_path.iterdir()] == ["lr-find.png"]
    assert (tmp_path / "lr-find.png").read_bytes()[:8] == PNG_SIGNATURE


def test_a_range_whose_minimum_is_near_its_start_gives_no_suggestion(
    tmp_path, cache, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    args = [*TINY_DATA, *TINY_MODEL, f"data.cache_dir={cache}", "optimizer=sgd"]
    code = main(["lr-find", *args, "--start", "1", "--end", "1e4", "--steps", "12", "--json"])
    assert code == 65
    printed = json.loads(capsys.readouterr().out)
    assert printed["suggestion"] is None and printed["override"] is None
    assert "a lower --start" in printed["why"]
    assert (tmp_path / "lr-find.png").is_file()  # the curve shows why


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--start", "1", "--end", "0.1"], "needs 0 < start < end"),
        (["--start", "0"], "needs 0 < start < end"),
        (["--end", "inf"], "both finite"),
        (["--steps", "1"], "needs 2 steps or more"),
        (["--plot", "curve.jpg"], "give a path ending in .png"),
        (["--plot", "missing/curve.png"], "the folder missing does not exist"),
    ],
)
def test_bad_options_exit_65_before_anything_is_written(
    tmp_path, monkeypatch, caplog, options, message
):
    monkeypatch.chdir(tmp_path)
    assert main(["lr-find", f"data.cache_dir={tmp_path}/cache", *options]) == 65
    assert message in caplog.text
    assert list(tmp_path.iterdir()) == []
