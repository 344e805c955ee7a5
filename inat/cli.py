"""The `inat` command: a thin entry point over the package.

    inat, inat --help                  the commands; inat --version: the version
    inat train [OVERRIDES...]          train one run; Hydra overrides, `-m` for a multirun
    inat train --help                  every config group and option
    inat launch [ACCELERATE OPTIONS] COMMAND [ARGS...]
                                       COMMAND in one process per GPU (accelerate launch)
    inat data download [SOURCE]        fetch and extract a data set into the local cache
    inat data list | clean             what the cache holds; remove old or all entries
    inat weights download NAME DEST    fetch a backbone's pretrained weights once, where there is
                                       internet, for model.weights=DEST
    inat smoke [OVERRIDES...]          check the accelerator, fp16 training, the output, the data
    inat lr-find [OVERRIDES...]        a learning-rate range test: a suggested optimizer.lr, a plot
    inat results OUTPUT[/SWEEP]        leaderboard and plots; --best config, --download checkpoint
    inat results SWEEP SWEEP...        their searches compared; SWEEP --dashboard: optuna-dashboard
    inat evaluate CHECKPOINT DATA      test accuracy, per-class accuracy, confusion matrix
    inat predict CHECKPOINT IMAGES...  the top-k classes of new photos
    inat export CHECKPOINT DEST        the model as safetensors, torch.export, TorchScript or ONNX,
                                       for use without inat

Exit codes are documented in inat/errors.py.
"""

from __future__ import annotations

import argparse
import atexit
import json
import logging
import os
import shutil
import sys
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException, OverrideParseException
from hydra.types import RunMode
from omegaconf import DictConfig
from omegaconf.errors import OmegaConfBaseException

from inat import __version__, stop_signals
from inat.compose import config_error, hydra_overrides
from inat.errors import ConfigError, ExitCode, InatError
from inat.launch import launch
from inat.rundir import CONFIG, MANIFEST, RESULT, Status
from inat.schema import TTA_MODES
from inat.storage import open_storage, storage_settings

if TYPE_CHECKING:
    from inat.sweeps.search import Search

log = logging.getLogger("inat")


class _TrainState:
    """What the Hydra task reports back to the command: whether it started, which points failed."""

    started = False
    failures: list[str] = []  # noqa: RUF012 - reset by _train_command


class FolderInUse(ConfigError):
    """`inat train` was pointed at a folder that holds another kind of result: a multirun at
    a run directory, a run at a folder of points. No point of a multirun can go there."""


def _check_folder(cfg: DictConfig, multirun: bool) -> None:
    """Refuse (FolderInUse) a multirun whose folder is a run directory or a job's sweep,
    and a run whose run directory holds a multirun's or a sweep's points."""
    settings = storage_settings(cfg.storage)
    if multirun:
        folder = open_storage(f"{cfg.output}/{cfg.name}", settings)
        held = [name for name in (CONFIG, RESULT, MANIFEST) if folder.exists(name)]
        if held:
            what = "the sweep of a job file" if MANIFEST in held else "a single run"
            raise FolderInUse(
                f"{folder.uri} holds {what} ({held[0]}): the multirun's points would land "
                f"inside it. Give the multirun a folder of its own with name=..., e.g. "
                f"inat train -m name={cfg.name}-sweep ..., or move {folder.uri} away."
            )
        return
    run = open_storage(cfg.run_dir, settings)
    if run.exists(CONFIG) or run.exists(RESULT):
        return  # a run directory: resumed, or already done
    paths = [path.split("/") for path in run.list()]
    points = sorted({p[0] for p in paths if len(p) == 2 and p[1] in (CONFIG, RESULT)})
    if run.exists(MANIFEST) or points:
        held = MANIFEST if run.exists(MANIFEST) else f"{points[0]}/"
        raise FolderInUse(
            f"{run.uri} holds the points of a multirun or sweep ({held}): a run there would "
            f"mix its files with theirs. Give the run a folder of its own with name=..., e.g. "
            f"inat train name={cfg.name}-run ..., or move {run.uri} away."
        )


@hydra.main(config_path="configs", config_name="train", version_base="1.3")
def _hydra_train(cfg: DictConfig) -> float | None:
    from inat.compose import name_run, validate
    from inat.sweeps.jobs import point_name

    _TrainState.started = True
    hydra_cfg = HydraConfig.get()
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    swept = []
    if multirun:
        fixed = set(hydra_cfg.job.config.override_dirname.exclude_keys)
        overrides = OverridesParser.create().parse_overrides(list(hydra_cfg.overrides.task))
        swept = [o for o in overrides if o.key_or_group not in fixed]
    try:
        validate(cfg)
        name_run(cfg, leave_out=[o.key_or_group for o in swept])
        if multirun:
            point = point_name(hydra_cfg.job.num, [o.input_line for o in swept])
            cfg.run_dir = f"{cfg.output}/{cfg.name}/{point}"
        _check_folder(cfg, multirun)
        from inat.train import train  # seconds to import: only once the config is good

        result = train(cfg)
        if not multirun:
            log.info("%s", next_commands(cfg.run_dir, sweep=False))
        return result["best_val_accuracy"]
    except InatError as e:
        code = e.exit_code
        log.error("%s (exit code %d: %s)", e, code, code.name)
        if isinstance(e, FolderInUse):
            sys.exit(code)  # the whole multirun: none of its points can go there
    except Exception:
        # Reported here, not by Hydra, whose report names the overrides: they may hold
        # secrets (a URL's password).
        code = ExitCode.FAILURE
        log.exception("unexpected failure (exit code %d: %s)", code, code.name)
    if not multirun:
        sys.exit(code)
    _TrainState.failures.append(cfg.run_dir)
    return None


def _fixed_keys(args: Sequence[str]) -> list[str]:
    """Keys the command line sets to one value (or that only say where to write).

    A multirun point is named by the other overrides: the swept ones.
    """
    from inat.results.configs import LOCATION_KEYS

    try:
        overrides = OverridesParser.create().parse_overrides([a for a in args if "=" in a])
    except OverrideParseException:
        return []  # Hydra reports the bad override itself
    fixed = {o.key_or_group for o in overrides if not o.is_sweep_override()}
    return sorted(fixed | LOCATION_KEYS)


_FULL_ERROR = "HYDRA_FULL_ERROR"


def _train_command(args: Sequence[str]) -> int:
    _TrainState.started = False
    _TrainState.failures = []
    args = hydra_overrides(args)
    multirun = "-m" in args or "--multirun" in args
    if multirun and (fixed := _fixed_keys(args)):
        quoted = ",".join(f"'{key}'" for key in fixed)
        args = [*args, f"hydra.job.config.override_dirname.exclude_keys=[{quoted}]"]
    # Hydra's multirun.yaml (the overrides, secrets too) goes nowhere the user keeps.
    scratch = tempfile.mkdtemp(prefix="inat-multirun-") if multirun else None
    if scratch:
        args = [*args, f"hydra.sweep.dir={scratch}"]
    sys.argv = ["inat train", *args]
    full_error = os.environ.get(_FULL_ERROR)
    # Hydra raises what fails to compose, instead of printing it with advice to add a `+`:
    # it becomes the one message of inat.compose. The task reports its own errors.
    os.environ[_FULL_ERROR] = "1"
    try:
        _hydra_train()
    except (HydraException, OmegaConfBaseException, ValueError) as e:
        # (Hydra raises a ValueError for some bad overrides, e.g. a group set to null; the
        # task reports its own errors and never lets one out.)
        if full_error == "1":  # the user asked for Hydra's full stack trace
            raise
        error = config_error(e, [a for a in args if not a.startswith("-")])
        log.error("%s (exit code %d: %s)", error, error.exit_code, error.exit_code.name)
        return error.exit_code
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else ExitCode.FAILURE
        # Hydra exits with 1 when its own options are bad (`--cfg job --package nowhere`);
        # that is bad input, never worth a retry. The task itself exits with its own codes.
        if code == ExitCode.FAILURE and not _TrainState.started:
            return ExitCode.BAD_INPUT
        return code
    finally:
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)
        if full_error is None:
            os.environ.pop(_FULL_ERROR)
        else:
            os.environ[_FULL_ERROR] = full_error
    if _TrainState.failures:
        log.error("%d point(s) failed: %s", len(_TrainState.failures), _TrainState.failures)
        return ExitCode.FAILURE
    return ExitCode.OK


def _sweep(args: argparse.Namespace) -> int:
    from inat.sweeps.jobs import load_job
    from inat.sweeps.run import run_all, run_point, sweep_storage
    from inat.sweeps.worker import run_worker, run_workers, task_workers

    job = load_job(args.job)
    if args.list:
        return _list_points(job, args.overrides)
    if args.index is not None:
        run_point(job, args.index, args.overrides)
        return ExitCode.OK
    if args.worker is not None:
        run_worker(job, args.overrides, args.worker)
        return ExitCode.OK
    if args.task is not None:
        search = _adaptive_search(job, "--task")
        return run_workers(args.job, job, args.overrides, task_workers(search, args.task))
    if args.launcher == "slurm":
        from inat.sweeps.slurm.controller import run_sweep

        return run_sweep(args.job, args.overrides)
    summary = run_all(args.job, job, args.overrides)
    finished = (Status.DONE.value, Status.PRUNED.value)  # a pruned point is a result too
    if not summary:
        return ExitCode.OK
    log.info("%s", next_commands(sweep_storage(job, args.overrides).uri, sweep=True))
    expected = summary.get("run_cap", len(summary["points"]))  # an adaptive sweep's budget
    if sum(summary["counts"].get(s, 0) for s in finished) < expected:
        log.error("not every point is done or pruned: %s of %d", summary["counts"], expected)
        return ExitCode.FAILURE
    return ExitCode.OK


def next_commands(location: str, sweep: bool) -> str:
    """What to do with a finished run or sweep at `location`: the commands, one a line."""
    if sweep:
        commands = [
            (f"inat results {location}", "the leaderboard and plots"),
            (f"inat results {location} --best", "the best point's config, to train again"),
            (f"inat results {location} --download best DIR", "its checkpoint"),
        ]
    else:
        commands = [
            (f"inat results {location}", "the metrics and plots"),
            (f"inat evaluate {location} DATA", "test accuracy on a data set or class folders"),
            (f"inat predict {location} IMAGES...", "the classes of your images"),
            (f"inat export {location} DEST", "a model for use without inat"),
            ("inat sweep jobs/demo_sweep.yaml", "a sweep (see jobs/ for more)"),
        ]
    width = max(len(command) for command, _ in commands)
    lines = [f"  {command.ljust(width)}  # {what}" for command, what in commands]
    return "next:\n" + "\n".join(lines)


def _adaptive_search(job: dict, option: str) -> Search:
    """The search of an adaptive sweep; ConfigError if the job is not one."""
    from inat.sweeps.search import parse_search

    search = parse_search(job["name"], job.get("sweep") or {}) if job.get("sweep") else None
    if search is None or not search.adaptive:
        raise ConfigError(f"{option} runs the workers of an adaptive sweep (method: bayes)")
    return search


def _list_points(job: dict, overrides: Sequence[str]) -> int:
    """Print the job's points: an adaptive sweep's as workers took them so far."""
    from inat.rundir import sweep_points
    from inat.sweeps.jobs import expand
    from inat.sweeps.run import compose_all, is_adaptive, sweep_storage

    compose_all(job, overrides)  # a point that would not train is not listed as one
    if not is_adaptive(job):
        points = [(p.index, p.name, p.overrides) for p in expand(job)]
    else:
        storage = sweep_storage(job, overrides)
        taken = sweep_points(storage) if storage.exists(MANIFEST) else []
        points = [(p["index"], p["name"], p["overrides"]) for p in taken]
        log.info("%s: workers choose each point as they take it; %d taken", job["name"], len(taken))
    for index, name, point_overrides in points:
        print(index, name, " ".join(point_overrides))
    return ExitCode.OK


def _data_download(args: argparse.Namespace) -> int:
    from inat.data import download_command

    download_command(args.source, args.cache_dir)
    return ExitCode.OK


def _weights_download(args: argparse.Namespace) -> int:
    from inat.models.download import download_weights, report

    print(report(download_weights(args.name, args.dest)))
    return ExitCode.OK


def _data_list(args: argparse.Namespace) -> int:
    from inat.data.cache import cache_folder, entries, list_report

    cache_dir = cache_folder(args.cache_dir)
    found = entries(cache_dir)
    if args.json:
        print(json.dumps([entry.record(cache_dir) for entry in found], indent=2))
    else:
        print(list_report(cache_dir, found))
    return ExitCode.OK


def _data_clean(args: argparse.Namespace) -> int:
    from inat.data.cache import cache_folder, clean, clean_report

    cache_dir = cache_folder(args.cache_dir)
    print(clean_report(cache_dir, clean(cache_dir, None if args.all else args.older_than)))
    return ExitCode.OK


def _smoke(args: argparse.Namespace) -> int:
    from inat.smoke import smoke

    return smoke(args.overrides, require_gpu=args.require_gpu)


def _lr_find(args: argparse.Namespace) -> int:
    from inat.compose import compose
    from inat.train.lr_find import check_plot, check_range, lr_find, report, write_plot

    check_range(args.start, args.end, args.steps)
    check_plot(args.plot)
    result = lr_find(compose(args.overrides), args.start, args.end, args.steps)
    plot = write_plot(result, args.plot)
    print(
        json.dumps({**result.record(), "plot": plot}, indent=2)
        if args.json
        else report(result, plot)
    )
    # No suggestion: the same options give none again; the report says which to change.
    return ExitCode.OK if result.suggestion is not None else ExitCode.BAD_INPUT


def _results(args: argparse.Namespace) -> int:
    from inat.results import search, show

    if args.plots_dir is not None and args.no_plots:
        raise ConfigError("--plots-dir says where to write the plots, --no-plots to write none")
    if len(args.path) > 1:
        if (
            args.best
            or args.download
            or args.dashboard
            or args.grid
            or args.plots_dir is not None
            or args.format == "csv"
        ):
            raise ConfigError(
                "several sweeps are compared as a table (or --json) and one plot; --best, "
                "--download, --dashboard, --grid, --plots-dir and --csv take one path"
            )
        search.compare(args.path, args.format, not args.no_plots)
        return ExitCode.OK
    path = args.path[0]
    if args.dashboard:
        from inat.results.dashboard import serve

        serve(path, args.port)
    elif args.best:
        show.show_best(path, Path(args.save), as_json=args.format == "json")
    elif args.download:
        show.fetch(path, args.download[0], Path(args.download[1]))
    else:
        show.show(
            path,
            args.format,
            not args.no_plots,
            args.grid,
            args.data,
            args.cache_dir,
            args.plots_dir,
        )
    return ExitCode.OK


def _evaluate(args: argparse.Namespace) -> int:
    from inat.results.classifier import load_classifier
    from inat.results.evaluate import evaluate_checkpoint, report

    classifier = load_classifier(args.checkpoint)
    evaluation = evaluate_checkpoint(classifier, args.data, args.cache_dir, args.tta)
    print(json.dumps(evaluation, indent=2) if args.json else report(evaluation))
    return ExitCode.OK


def _predict(args: argparse.Namespace) -> int:
    from inat.results.classifier import load_classifier
    from inat.results.predict import image_files, predict, report

    files = image_files(args.images)
    result = predict(load_classifier(args.checkpoint), files, args.top_k, args.tta)
    print(json.dumps(result, indent=2) if args.json else report(result))
    return ExitCode.OK


def _export(args: argparse.Namespace) -> int:
    from inat.results.export import export, report

    print(report(export(args.checkpoint, args.dest, args.format)))
    return ExitCode.OK


def _add_results_commands(commands: argparse._SubParsersAction) -> None:
    """The results, evaluate and predict commands: they read run directories, never train."""
    checkpoint_help = (
        "a checkpoint: a state.pt file, a folder holding one (see inat results --download) or "
        "a run directory (its best checkpoint); local or s3://"
    )
    results = commands.add_parser(
        "results",
        help="the leaderboard and plots of a sweep or run; its best config; its checkpoints",
        description="Read a sweep or run (local or s3://, finished or still running): print a "
        "leaderboard sorted by validation accuracy and write plots to its plots/ folder (or "
        "to --plots-dir).",
    )
    results.add_argument(
        "path",
        nargs="+",
        help="a sweep folder (OUTPUT/NAME), a run directory, a folder of runs (inat train -m) "
        "or an output folder holding one sweep; several sweeps: their search compared",
    )
    formats = results.add_mutually_exclusive_group()
    formats.add_argument(
        "--json",
        dest="format",
        action="store_const",
        const="json",
        default="text",
        help="print JSON for scripts",
    )
    formats.add_argument(
        "--csv", dest="format", action="store_const", const="csv", help="print CSV for scripts"
    )
    actions = results.add_mutually_exclusive_group()
    actions.add_argument(
        "--best",
        action="store_true",
        help="print the best point's config as inat train overrides and save it as a config "
        "file (see --save) to retrain or fine-tune from",
    )
    actions.add_argument(
        "--download",
        nargs=2,
        metavar=("POINT", "DEST"),
        help="copy a point's best checkpoint and config.yaml into the local folder DEST; "
        "POINT: best, an index or a point's folder name",
    )
    actions.add_argument(
        "--dashboard",
        action="store_true",
        help="serve the sweep in optuna-dashboard on 127.0.0.1 (history, intermediate "
        "values, parallel coordinates, importances) until Ctrl-C",
    )
    results.add_argument(
        "--port",
        type=int,
        default=8080,
        help="the port of --dashboard (default: 8080; 0: a free one)",
    )
    results.add_argument(
        "--save",
        default="best.yaml",
        metavar="FILE",
        help="the config file --best writes (default: best.yaml)",
    )
    results.add_argument("--no-plots", action="store_true", help="write no plots")
    results.add_argument(
        "--plots-dir",
        default=None,
        metavar="DIR",
        help="write the plots into the folder DIR (created if missing) instead of the plots/ "
        "folder of the sweep or run, which is left as it is: e.g. a local copy of an S3 "
        "sweep's plots, with read-only access to the sweep",
    )
    results.add_argument(
        "--grid",
        action="store_true",
        help="also plot test images with true and predicted labels: loads the best "
        "checkpoint and the test data (see --data)",
    )
    results.add_argument(
        "--data",
        default=None,
        metavar="SOURCE",
        help="the data source of --grid (default: the best point's)",
    )
    results.add_argument(
        "--cache-dir",
        default=None,
        metavar="DIR",
        help="the data cache of --grid (default: see docs/data.md)",
    )
    results.set_defaults(run=_results)

    tta_help = (
        "test-time augmentation: none, or flip (the mean of the predictions for each image "
        "and its mirror image); default: the run's trainer.tta"
    )
    evaluate = commands.add_parser(
        "evaluate",
        help="test accuracy, per-class accuracy and confusion matrix of a checkpoint",
        description="Score a checkpoint on the test set (the val/ folder) of a data source, "
        "or on a plain folder of class folders, with the image size, batch size and "
        "precision it was trained with.",
    )
    evaluate.add_argument("checkpoint", help=checkpoint_help)
    evaluate.add_argument(
        "data",
        help="a data source as data.source takes it: a .zip, a folder, an http(s) URL, an "
        "s3:// URI or 'synthetic' (the checkpoint's own generated data); or a local folder of "
        "class folders (FOLDER/<class>/<images>, some or all of the checkpoint's classes)",
    )
    evaluate.add_argument(
        "--cache-dir",
        default=None,
        metavar="DIR",
        help="the data cache (default: see docs/data.md)",
    )
    evaluate.add_argument("--tta", choices=TTA_MODES, default=None, help=tta_help)
    evaluate.add_argument("--json", action="store_true", help="print JSON for scripts")
    evaluate.set_defaults(run=_evaluate)

    predict = commands.add_parser(
        "predict",
        help="the most likely classes of image files, with probabilities; files that are "
        "not readable images are listed as skipped",
    )
    predict.add_argument("checkpoint", help=checkpoint_help)
    predict.add_argument("images", nargs="+", help="image files or folders of images")
    predict.add_argument(
        "--top-k", type=int, default=3, metavar="K", help="classes shown per image (default: 3)"
    )
    predict.add_argument("--tta", choices=TTA_MODES, default=None, help=tta_help)
    predict.add_argument("--json", action="store_true", help="print JSON for scripts")
    predict.set_defaults(run=_predict)

    export = commands.add_parser(
        "export",
        help="write a checkpoint's model as safetensors, a torch.export program, TorchScript or "
        "ONNX, for use without inat",
        description="Write a checkpoint's model into the new folder DEST: the model file and "
        "model.json (its classes, the image size and normalisation it takes, how to load it). "
        "docs/results.md shows how to load each format without inat.",
    )
    export.add_argument("checkpoint", help=checkpoint_help)
    export.add_argument("dest", help="a new folder (one that exists is refused)")
    export.add_argument(
        "--format",
        default="safetensors",
        metavar="FORMAT",
        help="safetensors (the weights, default), exported_program (torch.export's program, "
        "torch.export.load(file).module()), torchscript (the traced program, torch.jit.load; "
        "deprecated by PyTorch in favour of torch.export) or onnx (the program for onnxruntime)",
    )
    export.set_defaults(run=_export)


def _add_lr_find_command(commands: argparse._SubParsersAction) -> None:
    """The lr-find command: a learning-rate range test on a train config; no run directory."""
    finder = commands.add_parser(
        "lr-find",
        help="a learning-rate range test: the training loss as optimizer.lr grows, a suggested "
        "optimizer.lr and a plot; writes no run directory",
        description="Train a throwaway copy of the model that the inat train overrides "
        "configure, on its data, optimizer, batch size and precision, for --steps optimizer "
        "steps, optimizer.lr growing exponentially from --start to --end (each param group "
        "keeping its lr_scale), until the smoothed loss passes 4x its best. Suggests "
        "optimizer.lr: the learning rate of the lowest smoothed loss, divided by 10. Writes "
        "only the plot (and the data cache, as training does). Exit code 65 when the options "
        "are bad or the range gives no suggestion.",
    )
    finder.add_argument(
        "overrides",
        nargs="*",
        help="inat train overrides, e.g. model=finetune model.backbone=resnet18 "
        "data.source=/data/nature_12K.zip",
    )
    finder.add_argument(
        "--start",
        type=float,
        default=1e-7,
        metavar="LR",
        help="the first learning rate (default: 1e-7)",
    )
    finder.add_argument(
        "--end",
        type=float,
        default=10.0,
        metavar="LR",
        help="the last learning rate, unless the loss diverges before (default: 10)",
    )
    finder.add_argument(
        "--steps",
        type=int,
        default=100,
        metavar="N",
        help="optimizer steps from --start to --end (default: 100)",
    )
    finder.add_argument(
        "--plot",
        default="lr-find.png",
        metavar="PATH",
        help="the PNG of the loss against the learning rate, overwritten if it exists "
        "(default: lr-find.png in the current folder)",
    )
    finder.add_argument(
        "--json",
        action="store_true",
        help="print JSON for scripts: the suggestion, its override, the curve, the plot's path",
    )
    finder.set_defaults(run=_lr_find)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="inat",
        description="Train image classifiers on iNaturalist-12K as batch jobs.",
        epilog="Exit codes: 0 ok, 1 unexpected failure, 65 bad config or input (do not retry), "
        "75 interrupted or storage unreachable (retry: the run resumes).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser(
        "train",
        help="train one run or, with -m, a multirun; Hydra overrides follow "
        "(inat train --help lists them)",
        add_help=False,
    )
    commands.add_parser(
        "launch",
        help="run an inat command in several processes, one per GPU: accelerate launch "
        "options, then the command (inat launch --help lists the options)",
        add_help=False,
    )
    sweep = commands.add_parser(
        "sweep",
        help="run a job file (jobs/*.yaml): every point here, one after another, or one "
        "point; an adaptive sweep's workers",
        description="Run the points of a job file. Overrides after the file apply to every "
        "point, e.g. output=s3://bucket/runs data.source=/data/nature_12K.zip.",
    )
    sweep.add_argument("job", help="a job file, e.g. jobs/scratch_sweep.yaml")
    sweep.add_argument("overrides", nargs="*", help="Hydra overrides for every point")
    sweep.add_argument(
        "--index",
        type=int,
        default=None,
        help="run only this point (0-based), e.g. $JOB_COMPLETION_INDEX or $SLURM_ARRAY_TASK_ID",
    )
    sweep.add_argument(
        "--worker",
        default=None,
        metavar="NAME",
        help="run one worker of an adaptive sweep (method: bayes): take points and train them "
        "until none is left",
    )
    sweep.add_argument(
        "--task",
        type=int,
        default=None,
        metavar="G",
        help="run the workers of task G of an adaptive sweep (its workers_per_gpu workers), "
        "e.g. $JOB_COMPLETION_INDEX or $SLURM_ARRAY_TASK_ID",
    )
    sweep.add_argument("--list", action="store_true", help="print the points and exit")
    sweep.add_argument(
        "--launcher",
        choices=("local", "slurm"),
        default="local",
        help="local: every point here, one after another (default); slurm: one Slurm array "
        "job, hydra.launcher.* overrides set its resources (see slurm/sweep.sh)",
    )
    sweep.set_defaults(run=_sweep)
    data = commands.add_parser("data", help="manage data sets")
    data_commands = data.add_subparsers(dest="data_command", required=True, metavar="COMMAND")
    download = data_commands.add_parser(
        "download", help="download and extract a data set into the local cache, then print where"
    )
    download.add_argument(
        "source",
        nargs="?",
        default="https://storage.googleapis.com/wandb_datasets/nature_12K.zip",
        help="a .zip path or folder, an http(s) URL, an s3:// URI or 'synthetic' "
        "(default: the official nature_12K archive)",
    )
    download.add_argument(
        "--cache-dir", default=None, help="the cache folder (default: see docs/data.md)"
    )
    download.set_defaults(run=_data_download)
    listing = data_commands.add_parser(
        "list",
        help="the data sets and prepared images in the cache: source, size on disk, last use",
    )
    listing.add_argument(
        "--cache-dir", default=None, help="the cache folder (default: see docs/data.md)"
    )
    listing.add_argument("--json", action="store_true", help="print JSON for scripts")
    listing.set_defaults(run=_data_list)
    cleaning = data_commands.add_parser(
        "clean",
        help="remove cache entries unused for some days, or all; never one another process "
        "holds the lock of",
        description="Remove what the data cache holds (data sets, prepared images, unfinished "
        "builds and downloads), except entries another process holds the lock of while it "
        "builds them, and say what was freed. A run training from an entry holds no lock: keep "
        "recent entries with --older-than.",
    )
    which = cleaning.add_mutually_exclusive_group(required=True)
    which.add_argument(
        "--older-than",
        type=float,
        metavar="DAYS",
        help="remove entries last used more than DAYS days ago",
    )
    which.add_argument("--all", action="store_true", help="remove every entry")
    cleaning.add_argument(
        "--cache-dir", default=None, help="the cache folder (default: see docs/data.md)"
    )
    cleaning.set_defaults(run=_data_clean)
    weights = commands.add_parser("weights", help="pretrained backbone weights")
    weights_commands = weights.add_subparsers(
        dest="weights_command", required=True, metavar="COMMAND"
    )
    weights_download = weights_commands.add_parser(
        "download",
        help="download a backbone's pretrained ImageNet weights once, where there is internet "
        "(a login node), into a file for model.weights",
        description="Write the state dict of a backbone's pretrained ImageNet weights to DEST, "
        "and its sha256 beside it (DEST.sha256, as sha256sum writes it), which model.weights "
        "checks when it reads DEST. Runs on nodes without internet then pass "
        "model.weights=DEST.",
    )
    weights_download.add_argument(
        "name",
        metavar="NAME",
        help="a model.backbone: torchvision's resnet18, resnet50, efficientnet_b0, "
        "efficientnet_v2_s, convnext_tiny or vit_b_16 (DEFAULT weights; other weights after a "
        "dot: resnet50.IMAGENET1K_V1), or a timm model, its pretrained tag allowed "
        "(convnext_small.fb_in22k; timm/resnet50: timm's own)",
    )
    weights_download.add_argument(
        "dest",
        metavar="DEST",
        help="a local file or s3://BUCKET/KEY; a name ending in .safetensors is written as "
        "safetensors, any other with torch.save",
    )
    weights_download.set_defaults(run=_weights_download)
    smoke = commands.add_parser(
        "smoke",
        help="check that this machine or image can train: the accelerator, a few fp16 steps, "
        "a checkpoint in the output, the data source",
        description="Check, in under a minute, what a training run needs; one PASS, FAIL or "
        "SKIP line per check. Exit code 0 only if no check failed.",
    )
    smoke.add_argument(
        "overrides",
        nargs="*",
        help="inat train overrides that name what to check, e.g. output=s3://bucket/runs "
        "data.source=s3://bucket/nature_12K.zip storage.endpoint_url=http://minio:9000",
    )
    smoke.add_argument(
        "--require-gpu",
        action="store_true",
        help="check the GPU first and, without a usable one, fail at once naming the NVIDIA "
        "driver, CUDA and torch versions and what to do",
    )
    smoke.set_defaults(run=_smoke)
    _add_lr_find_command(commands)
    _add_results_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `inat` command line; returns the process exit code.

    A stop signal ends any command with exit code 75 (retry), from this moment on: before
    a command installs handlers of its own, it raises Interrupted where it arrives. Only
    the first counts (inat.stop_signals).
    """
    with stop_signals.command():
        try:
            return _command(list(sys.argv[1:] if argv is None else argv))
        except InatError as e:
            log.error("%s", e)
            return e.exit_code


def run() -> NoReturn:
    """The `inat` program: `main()`, then the process ends without Python's teardown.

    Tearing torch down (with torch._dynamo, which the first optimizer imports) takes over
    a second at every exit; once the threads are joined, the atexit handlers have run and
    the output is flushed, nothing is left that the teardown would do for inat. A stop
    signal from the end of `main()` on is ignored: the exit code is decided.
    """
    code = main()
    stop_signals.ignored()
    for thread in threading.enumerate():
        if thread is not threading.main_thread() and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()  # what Python runs at exit: logging's flush, loader workers
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _command(argv: list[str]) -> int:
    """Run the command that `argv` names; InatError for what ends it early."""
    if argv[:1] == ["train"]:
        return _train_command(argv[1:])
    if argv[:1] == ["launch"]:
        logging.basicConfig(
            level=logging.INFO,
            format="%(levelname)s %(name)s: %(message)s",
            handlers=[stop_signals.ConsoleHandler()],
        )
        return launch(argv[1:])
    parser = _parser()
    if not argv:
        parser.print_help()
        return ExitCode.OK
    args, extra = parser.parse_known_args(argv)
    if extra:
        # argparse ends a command's overrides at its first option: `sweep JOB --index 3 a=b`
        # or `lr-find a=b --steps 50 c=d` leave c=d over. Anything else left over is a mistake.
        if not hasattr(args, "overrides") or any(arg.startswith("-") for arg in extra):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.overrides += extra
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=[stop_signals.ConsoleHandler()],
    )
    return args.run(args)
