"""Several processes of an inat command, one per GPU, under Accelerate's launcher, ending
with the exit code of the process that failed.

    inat launch --multi_gpu --num_processes 4 train experiment=original_finetune
    inat launch --multi_gpu --num_processes 4 sweep --index 3 job.yaml output=s3://b/runs

The options before the inat command are those of `accelerate launch`. That launcher exits 1
whenever a process fails; this one keeps the process's code (inat/errors.py), so that the
Slurm requeue logic and the Kubernetes podFailurePolicy can tell bad input (65, never
retried) from a stop after a checkpoint (75, retried).
"""

from __future__ import annotations

import argparse
import logging
import signal
import subprocess
from collections.abc import Sequence

from inat.errors import ExitCode
from inat.stop_signals import passed_to_children

log = logging.getLogger(__name__)

# The options of `accelerate launch` that `inat launch --help` shows; every other one works
# too (`accelerate launch --help` lists them).
SHOWN_OPTIONS = (
    "--multi_gpu",
    "--cpu",
    "--num_processes",
    "--num_machines",
    "--machine_rank",
    "--main_process_ip",
    "--main_process_port",
    "--rdzv_backend",
    "--same_network",
    "--gpu_ids",
    "--num_cpu_threads_per_process",
    "--config_file",
)
DESCRIPTION = """\
Run an inat command (train, sweep, smoke, ...) in one process per GPU (or several CPU
processes, with trainer.cpu=true) through accelerate launch: its options come first, then
the inat command and that command's arguments."""
EPILOG = """\
examples:
  inat launch --multi_gpu --num_processes 4 train experiment=original_finetune
  inat launch --multi_gpu --num_processes 2 train trainer.cpu=true
  inat launch --multi_gpu --num_machines 2 --machine_rank $RANK --num_processes 8 \\
      --main_process_ip $HEAD --main_process_port 29500 train ...

--num_processes counts the processes of all machines. Precision is the config's
trainer.mixed_precision (an inat train override): accelerate's --mixed_precision does not
change it. Every other accelerate launch option is accepted as well: see
`accelerate launch --help`. The exit code is that of the process that failed first
(65: bad config, 75: stopped after a checkpoint), not accelerate's 1.
"""


def _show_only(parser: argparse.ArgumentParser, options: Sequence[str]) -> None:
    """Make `parser`'s help show `options` only (all its options still parse), and no
    positional argument: the inat command and its arguments fill those in."""
    for action in parser._actions:
        if not set(action.option_strings) & {*options, "-h", "--help"}:
            action.help = argparse.SUPPRESS
    for group in parser._action_groups:
        if all(action.help == argparse.SUPPRESS for action in group._group_actions):
            group.title = group.description = None


def launch(argv: Sequence[str]) -> int:
    """Run `accelerate launch OPTIONS -m inat COMMAND ARGS` for argv = OPTIONS COMMAND ARGS.

    Returns the exit code of the first process that failed, ExitCode.RETRY when the
    launcher itself was asked to stop (its processes got the signal and checkpointed),
    else ExitCode.OK.
    """
    from accelerate.commands.launch import launch_command, launch_command_parser
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    parser = launch_command_parser()
    parser.prog = "inat launch"
    parser.usage = "inat launch [ACCELERATE LAUNCH OPTIONS] COMMAND [ARGS...]"
    parser.description, parser.epilog = DESCRIPTION, EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    _show_only(parser, SHOWN_OPTIONS)
    args = parser.parse_args(argv)
    if args.module or args.no_python:
        parser.error("name the inat command only (e.g. train): it runs as `python -m inat`")
    args.module = True
    args.training_script_args = [args.training_script, *args.training_script_args]
    args.training_script = "inat"
    try:
        # Accelerate's elastic agent (several processes) installs handlers of its own that
        # stop its processes; its single process gets the signal from these.
        with passed_to_children():
            launch_command(args)
    except ChildFailedError as e:
        rank, failure = e.get_first_failure()
        code = _exit_code(failure.exitcode)
        log.error("process %d of %s failed first, with exit code %d", rank, e.name, code)
        return code
    except subprocess.CalledProcessError as e:  # one process, run as a plain subprocess
        return _exit_code(e.returncode)
    except SignalException as e:
        log.warning("stopped by %s: every process got it", signal.Signals(e.sigval).name)
        return ExitCode.RETRY
    return ExitCode.OK


def _exit_code(returncode: int) -> int:
    """A process's return code as a shell reports it: -N (killed by signal N) is 128 + N."""
    return returncode if returncode > 0 else 128 - returncode
