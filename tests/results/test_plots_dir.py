"""`inat results PATH --plots-dir DIR`: the plots of a sweep or run (on S3 or local) written
into DIR, created if missing, instead of the sweep's or run's plots/ folder."""

from __future__ import annotations

import json

from PIL import Image

from inat.cli import main
from inat.storage import LocalStorage, open_storage

PLOTS = {
    "learning_curves.png",
    "val_accuracy_vs_params.png",
    "parallel_coordinates.png",
    "test_confusion_matrix.png",
    "test_per_class_accuracy.png",
    "search_progress.png",
}
POINTS = [{"optimizer.lr": lr, "model.dropout": d} for lr in (1e-3, 1e-2) for d in (0.0, 0.3)]


def _check_pngs(folder, names) -> None:
    """`folder` holds exactly the PNG files `names`, each a whole, valid image."""
    assert {path.name for path in folder.iterdir()} == names
    for name in names:
        with Image.open(folder / name) as image:
            image.verify()  # the whole file: its chunks and their checksums
            assert image.format == "PNG"


def test_an_s3_sweeps_plots_are_written_to_a_new_local_folder_only(
    s3_bucket, s3_client, write_multirun, tmp_path, capsys
):
    sweep = open_storage(f"s3://{s3_bucket}/out/sweep")
    write_multirun(sweep, POINTS)
    before = s3_client.list_objects_v2(Bucket=s3_bucket)["Contents"]
    dest = tmp_path / "copies" / "sweep-plots"

    assert main(["results", sweep.uri, "--plots-dir", str(dest)]) == 0

    _check_pngs(dest, PLOTS)
    out = capsys.readouterr().out
    listed = out.split("\nplots:\n")[1].split()
    assert sorted(listed) == sorted(str(dest / name) for name in PLOTS)
    # The sweep on S3 is left as it was: no plots/ written there.
    assert s3_client.list_objects_v2(Bucket=s3_bucket)["Contents"] == before


def test_a_local_runs_plots_go_to_the_folder_given_and_are_listed_in_json(
    write_multirun, tmp_path, capsys
):
    write_multirun(LocalStorage(tmp_path / "out" / "sweep"), POINTS[:1])
    run = tmp_path / "out" / "sweep" / "000-point"
    dest = tmp_path / "plots of the run"

    assert main(["results", str(run), "--json", "--plots-dir", str(dest)]) == 0

    names = {"learning_curves.png", "test_confusion_matrix.png", "test_per_class_accuracy.png"}
    _check_pngs(dest, names)
    document = json.loads(capsys.readouterr().out)
    assert sorted(document["plots"]) == sorted(str(dest / name) for name in names)
    assert not (run / "plots").exists()


def test_plots_dir_is_refused_with_no_plots_and_with_several_sweeps(
    write_multirun, tmp_path, caplog
):
    for name in ("a", "b"):
        write_multirun(LocalStorage(tmp_path / "out" / name), POINTS)
    dest = tmp_path / "plots"
    a, b = str(tmp_path / "out" / "a"), str(tmp_path / "out" / "b")

    assert main(["results", a, "--plots-dir", str(dest), "--no-plots"]) == 65
    assert main(["results", a, b, "--plots-dir", str(dest)]) == 65

    assert "--plots-dir says where to write the plots, --no-plots to write none" in caplog.text
    assert "--plots-dir and --csv take one path" in caplog.text
    assert not dest.exists()
