#!/usr/bin/env bash
# A sweep on Slurm. This small job (one CPU) is the controller: it submits ONE array job with
# a task per point of the job file (at most hydra.launcher.array_parallelism at once), waits
# until every task has left Slurm's queue, then writes OUTPUT/NAME/summary.json next to the
# points' run directories. A point stopped by a time limit, preemption or `scontrol requeue`
# is requeued, waited for, and resumes from its checkpoint; a task that died without a word
# (killed, its node lost) is recorded as failed with Slurm's state and exit code.
#
#   sbatch slurm/sweep.sh JOB_FILE [OVERRIDES...]
#   sbatch slurm/sweep.sh jobs/scratch_sweep.yaml output=s3://bucket/runs \
#       data.source=s3://bucket/data/nature_12K.zip hydra.launcher.partition=gpu
#   JOB=jobs/finetune_sweep.yaml OVERRIDES="output=/scratch/me/runs" sbatch slurm/sweep.sh
#
# What to run, from the arguments or the environment:
#   JOB_FILE, or $JOB   the job file (jobs/*.yaml). When $JOB is set, every argument is an
#                       override; otherwise the first argument is the job file.
#   OVERRIDES           Hydra overrides: $OVERRIDES (split at spaces) first, then the
#                       arguments. hydra.launcher.* set the tasks' resources and the container
#                       (configs/hydra/launcher/slurm.yaml); the others apply to every point,
#                       e.g. output=... (where results go) and data.source=...
#   $PYTHON             the Python that has inat installed (default: python3 on PATH; sbatch
#                       passes on the submitting shell's environment, an activated venv too)
#
# Results: OUTPUT/NAME/ holds sweep.json, one run directory per point and summary.json.
# Logs: this job's inat-sweep-JOBID.out; each task's under logs/sweeps/NAME/TIME/.submitit/.
# Running it again after a failure resubmits only the points that are not done. Tasks of an
# earlier submission of the sweep (array job inat-NAME) still queued or running, e.g. after
# its controller was cancelled, are waited for first: their points are never trained twice.
# Exit code: 0 every point is done; 1 some failed (summary.json says why); 65 bad input;
# 75 squeue could not list the sweep's tasks (submit again). Each task: 0 its point done,
# else the point's exit code (65 bad config, 75 interrupted) or 128 + the signal that killed it.
#
#SBATCH --job-name=inat-sweep
#SBATCH --ntasks=1
#SBATCH --cpus-per-task=1                # the controller only submits and waits
#SBATCH --mem=2G
#SBATCH --time=2-00:00:00                # longer than the whole sweep: give it a partition
#                                        # or QOS that allows it and does not preempt it
#SBATCH --no-requeue                     # not preempted (see --time); submitted again, it
#                                        # waits for the sweep's tasks still in the queue
#SBATCH --output=%x-%j.out
set -euo pipefail

if [[ -n ${JOB:-} ]]; then
    job=$JOB
elif (($# > 0)); then
    job=$1
    shift
else
    echo "usage: sbatch slurm/sweep.sh JOB_FILE [OVERRIDES...]  (or JOB=JOB_FILE in the environment)" >&2
    exit 64
fi
overrides=()
if [[ -n ${OVERRIDES:-} ]]; then
    read -ra overrides <<<"$OVERRIDES"
fi
overrides+=("$@")

echo "inat sweep: $job on $(hostname), Slurm job ${SLURM_JOB_ID:-none}"
exec "${PYTHON:-python3}" -m inat sweep --launcher slurm "$job" "${overrides[@]}"
