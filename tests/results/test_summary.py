"""A sweep's bookkeeping (inat.sweeps.summary, mark_failed): a point has ended when done,
pruned or failed, as inat.rundir.Status says; the summary waits for every point."""

from __future__ import annotations

import json

import pytest

from inat.rundir import MANIFEST, SUMMARY, RunDir, Status
from inat.storage import LocalStorage
from inat.sweeps.run import mark_failed
from inat.sweeps.summary import write_summary_if_ended


def _sweep(tmp_path, statuses: list[Status]) -> LocalStorage:
    """A sweep folder whose points' result.json record `statuses`."""
    storage = LocalStorage(tmp_path)
    points = [{"index": i, "name": f"{i:03d}", "swept": []} for i in range(len(statuses))]
    storage.write_json(MANIFEST, {"name": "s", "points": points})
    for point, status in zip(points, statuses, strict=True):
        RunDir(storage.child(point["name"])).start({})
        RunDir(storage.child(point["name"])).mark(status, best_val_accuracy=0.5)
    return storage


def test_the_summary_is_written_once_every_point_is_done_pruned_or_failed(tmp_path):
    storage = _sweep(tmp_path, [Status.DONE, Status.PRUNED, Status.FAILED])
    assert write_summary_if_ended(storage)
    summary = json.loads((tmp_path / SUMMARY).read_text())
    assert summary["counts"] == {"done": 1, "pruned": 1, "failed": 1}
    assert summary["best"]["name"] == "000"


@pytest.mark.parametrize("unfinished", [Status.RUNNING, Status.INTERRUPTED])
def test_no_summary_while_a_point_may_still_train(tmp_path, unfinished):
    storage = _sweep(tmp_path, [Status.DONE, unfinished])
    assert not write_summary_if_ended(storage)
    assert not (tmp_path / SUMMARY).exists()


def test_mark_failed_keeps_an_ended_status_and_fails_the_others(tmp_path):
    storage = _sweep(tmp_path, [Status.PRUNED, Status.RUNNING])
    for name in ("000", "001", "002"):  # 002 never started
        mark_failed(storage.child(name), "its task died")
    assert RunDir(storage.child("000")).status() == Status.PRUNED
    for name in ("001", "002"):
        result = RunDir(storage.child(name)).result()
        assert (result["status"], result["error"]) == ("failed", "its task died")
