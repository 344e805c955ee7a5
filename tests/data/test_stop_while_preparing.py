"""A stop signal while the data set is still downloading stops the run at once: one log
line, exit 75 (never 143), the part already downloaded kept, and the next start resumes
the download and trains."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import zipfile
from pathlib import Path

import pytest
from helpers.runs import TINY_MODEL, inat_command, run_inat

from .trees import write_tree, write_zip

pytestmark = pytest.mark.slow


def _args(tmp_path: Path, url: str) -> list[str]:
    return [
        "train",
        f"data.source={url}",
        f"data.cache_dir={tmp_path}/cache",
        f"output={tmp_path}/out",
        "data.num_classes=3",
        "data.image_size=32",
        "data.batch_size=6",
        "data.val_fraction=0.5",
        *TINY_MODEL,
        "name=default",
        "trainer.epochs=1",
    ]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_during_the_download_exits_75_and_the_rerun_resumes_it(
    http_server, tmp_path: Path, sig: signal.Signals
) -> None:
    archive = write_zip(write_tree(tmp_path / "tree"), tmp_path / "nature.zip")
    with zipfile.ZipFile(archive, "a") as zf:  # 2 MB more, so that the download takes a while
        zf.writestr("notes.bin", os.urandom(2_000_000))
    http_server.files["/nature.zip"] = archive.read_bytes()
    http_server.stall = True
    url = http_server.url("/nature.zip")
    proc = subprocess.Popen(
        inat_command(*_args(tmp_path, url)),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert http_server.stalled.wait(timeout=120), "the download never started"
    downloads = tmp_path / "cache" / "downloads"
    deadline = time.monotonic() + 60
    while not any(p.stat().st_size for p in downloads.glob("*.part")):  # half has arrived
        assert time.monotonic() < deadline, "nothing arrived"
        time.sleep(0.01)
    proc.send_signal(sig)
    output = proc.communicate(timeout=120)[0]
    assert proc.returncode == 75, output
    assert f"received {sig.name} while preparing the run: stopping" in output
    assert "Traceback" not in output
    parts = list(downloads.glob("*.part"))
    assert parts and parts[0].stat().st_size > 0  # what arrived is kept
    result = json.loads((tmp_path / "out" / "default" / "result.json").read_text())
    assert result["status"] == "interrupted"

    http_server.stall = False
    again = run_inat(tmp_path, *_args(tmp_path, url))
    assert again.returncode == 0, again.stdout + again.stderr
    assert http_server.ranges[-1] is not None  # resumed with a Range request
