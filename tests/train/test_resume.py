"""Resume: a killed or signalled run restarts from its checkpoint and ends exactly as an
uninterrupted run with the same seed would (on the CPU).

Checkpoints restore every random stream, so a resumed run matches even with dropout,
augmentation and worker processes. A stop signal checkpoints mid-epoch; that resume skips
the batches already seen, in the same order.
"""

from __future__ import annotations

import json
import signal

import pytest
from helpers.runs import TINY, location, read_metrics, run_inat, run_until, without_timings

pytestmark = pytest.mark.slow

EPOCHS = 4
RANDOM = ["train", *TINY, f"trainer.epochs={EPOCHS}", "model.dropout=0.2", "data.augment=true"]
PLAIN = ["train", *TINY, f"trainer.epochs={EPOCHS}", "model.dropout=0.0", "data.augment=false"]
# Random draws in the main process, worker processes that load the batches: a resume must
# leave every generator where the uninterrupted run had it.
WORKERS = [*RANDOM, "data.num_workers=2"]


def _uninterrupted(tmp_path, args: list[str]) -> tuple[list[dict], dict]:
    done = run_inat(tmp_path, *args, *location(tmp_path))
    assert done.returncode == 0, done.stderr
    run_dir = tmp_path / "out" / "default"
    return read_metrics(run_dir), json.loads((run_dir / "result.json").read_text())


# The uninterrupted runs, trained once for the module's tests.
@pytest.fixture(scope="module")
def random_reference(tmp_path_factory) -> tuple[list[dict], dict]:
    return _uninterrupted(tmp_path_factory.mktemp("random-reference"), RANDOM)


@pytest.fixture(scope="module")
def workers_reference(tmp_path_factory) -> tuple[list[dict], dict]:
    return _uninterrupted(tmp_path_factory.mktemp("workers-reference"), WORKERS)


def test_kill_9_after_an_epoch_then_restart_matches_an_uninterrupted_run(
    tmp_path, random_reference
):
    metrics, result = random_reference
    killed = run_until(tmp_path, RANDOM, f"epoch 2/{EPOCHS} train_loss", signal.SIGKILL)
    assert killed.returncode == -signal.SIGKILL
    run_dir = tmp_path / "out" / "default"
    assert len(read_metrics(run_dir)) == 2

    resumed = run_inat(tmp_path, *RANDOM, *location(tmp_path))
    assert resumed.returncode == 0, resumed.stderr
    assert without_timings(read_metrics(run_dir)) == without_timings(metrics)
    final = json.loads((run_dir / "result.json").read_text())
    assert final["epochs"] == EPOCHS
    assert final["test"] == result["test"]
    assert [r["epoch"] for r in final["resumes"]] == [2]


# SIGINT and SIGHUP take the same path: tests/train/test_signals.py.
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGUSR2])
def test_a_stop_signal_mid_epoch_checkpoints_exits_75_and_resumes_exactly(
    tmp_path, sig, workers_reference
):
    metrics, result = workers_reference
    stopped = run_until(tmp_path, WORKERS, f"epoch 2/{EPOCHS} 3/", sig)
    assert stopped.returncode == 75
    run_dir = tmp_path / "out" / "default"
    assert json.loads((run_dir / "result.json").read_text())["status"] == "interrupted"
    latest = json.loads((run_dir / "checkpoints" / "latest.json").read_text())
    assert latest["epoch"] == 1  # epochs finished; the checkpoint is inside epoch 2

    resumed = run_inat(tmp_path, *WORKERS, *location(tmp_path))
    assert resumed.returncode == 0, resumed.stderr
    rows = read_metrics(run_dir)
    assert without_timings(rows) == without_timings(metrics)
    final = json.loads((run_dir / "result.json").read_text())
    assert final["test"] == result["test"]
    assert final["resumes"][0]["batches_done"] >= 3


def test_a_finished_run_is_not_trained_again(tmp_path):
    first = run_inat(tmp_path, *PLAIN, *location(tmp_path), "trainer.epochs=1")
    assert first.returncode == 0, first.stderr
    result_path = tmp_path / "out" / "default" / "result.json"
    before = result_path.read_text()
    again = run_inat(tmp_path, *PLAIN, *location(tmp_path), "trainer.epochs=1")
    assert again.returncode == 0
    assert "already done" in again.stderr + again.stdout
    assert result_path.read_text() == before


def test_resuming_with_another_model_config_fails_clearly(tmp_path):
    killed = run_until(tmp_path, PLAIN, f"epoch 1/{EPOCHS} train_loss", signal.SIGKILL)
    assert killed.returncode == -signal.SIGKILL
    other = run_inat(tmp_path, *PLAIN, *location(tmp_path), "model.dense_neurons=64")
    assert other.returncode == 65
    out = other.stdout + other.stderr
    assert "holds a run with another config (model.dense_neurons: 32 -> 64)" in out
