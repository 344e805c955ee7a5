"""Bad input to results, evaluate and predict: exit code 65 and a message naming the
problem and what to give instead."""

from __future__ import annotations

import logging

import pytest
from data.trees import write_tree

from inat.cli import main


@pytest.fixture
def errors(caplog):
    """Run `inat ARGS` in-process; returns (exit code, the error logged)."""
    caplog.set_level(logging.ERROR, logger="inat")

    def run(*args: str) -> tuple[int, str]:
        caplog.clear()
        code = main(list(args))
        return code, caplog.text

    return run


def test_a_folder_without_a_sweep_or_run_is_refused(errors, tmp_path):
    code, message = errors("results", str(tmp_path))
    assert code == 65
    assert f"found no sweep or run at {tmp_path}" in message
    assert "inat results outputs/demo-sweep" in message


def test_a_folder_of_several_sweeps_asks_for_one(errors, tmp_path):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "sweep.json").write_text('{"name": "x", "points": []}')
    code, message = errors("results", str(tmp_path))
    assert code == 65 and "holds several sweeps (a, b)" in message
    assert f"inat results {tmp_path}/a" in message


def test_a_path_without_a_checkpoint_is_refused(errors, tmp_path):
    code, message = errors("evaluate", str(tmp_path), "synthetic")
    assert code == 65
    assert f"found no checkpoint at {tmp_path}" in message and "state.pt" in message
    (tmp_path / "state.pt").write_bytes(b"not a checkpoint")
    code, message = errors("evaluate", str(tmp_path / "state.pt"), "synthetic")
    assert code == 65 and "state.pt is not a readable checkpoint" in message


@pytest.mark.slow
def test_bad_points_data_and_images_of_a_real_checkpoint_are_refused(
    errors, s3_sweep, aws_env, tmp_path
):
    code, message = errors("results", s3_sweep.uri, "--download", "7", str(tmp_path / "x"))
    assert code == 65
    assert "has no point '7': use best, an index (0-3) or a point's folder name" in message

    tree = write_tree(tmp_path / "three-classes")
    code, message = errors("evaluate", s3_sweep.uri + "/" + s3_sweep.points()[0]["name"], str(tree))
    assert code == 65
    assert "has the classes ['Aves', 'Fungi', 'Plantae'], but the checkpoint was trained on" in (
        message
    )

    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    checkpoint = f"{s3_sweep.uri}/{s3_sweep.points()[0]['name']}"
    code, message = errors("predict", checkpoint, str(text))
    assert code == 65 and f"{text} is not a readable image" in message
    code, message = errors("predict", checkpoint, str(tmp_path / "missing.jpg"))
    assert code == 65 and "missing.jpg is not an image file or a folder of images" in message
    code, message = errors("predict", checkpoint, str(tree / "val" / "Aves"), "--top-k", "0")
    assert code == 65 and "--top-k 0 is not allowed" in message
