#!/usr/bin/env bash
# One training run on 1..N GPUs of one or more nodes: srun starts one `inat launch` per
# node, which starts one training process per GPU; the nodes meet at the allocation's first
# node (c10d rendezvous). One process in all runs `inat train` directly.
#
#   sbatch slurm/train.sh experiment=original_finetune output=s3://bucket/runs name=ft-resnet50
#   sbatch --nodes=2 --gpus-per-node=4 slurm/train.sh experiment=original_finetune name=ft-8gpu
#
# Arguments: overrides of `inat train` (inat train --help lists them). The run directory is
# output/name: give each run its own name; a run directory with a checkpoint is resumed.
# Environment:
#   PYTHON          the Python that has inat installed (default: python3 on PATH; sbatch passes
#                   on the submitting shell's environment, an activated venv too)
#   PROCS_PER_NODE  training processes per node (default: the GPUs Slurm gave each node, or 1)
#   LAUNCH_ARGS     more options of `inat launch` (those of `accelerate launch`), e.g.
#                   "--mixed_precision bf16"
#   MASTER_PORT     the rendezvous port on the first node (default: one derived from the job id)
# Time limits and preemption: Slurm sends this script USR2 three minutes before the end
# (--signal); it passes the signal on to every training process, which checkpoints and stops,
# then requeues the job, which resumes from the run's latest checkpoint.
# Exit code: inat's (0 done, 65 bad config or input, 75 stopped after a checkpoint).
#
#SBATCH --job-name=inat-train
#SBATCH --nodes=1
#SBATCH --ntasks-per-node=1              # one launcher per node
#SBATCH --gpus-per-node=1                # one training process per GPU
#SBATCH --cpus-per-task=8                # data loading workers + 1 per GPU
#SBATCH --mem=64G                        # per node
#SBATCH --time=24:00:00
#SBATCH --signal=B:USR2@180              # to this script, which passes it on
#SBATCH --requeue
#SBATCH --open-mode=append               # a requeued job appends to its log
#SBATCH --output=%x-%j.out
set -euo pipefail

python=${PYTHON:-python3}
nodes=${SLURM_JOB_NUM_NODES:-1}
procs=${PROCS_PER_NODE:-${SLURM_GPUS_ON_NODE:-1}}
read -ra launch_args <<<"${LAUNCH_ARGS:-}"

if ((nodes * procs == 1)); then
    command=("$python" -m inat train "$@")
else
    head=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)
    port=${MASTER_PORT:-$((20000 + SLURM_JOB_ID % 20000))}
    # The torch launcher passes USR2 on to its workers and waits for their checkpoint.
    export PET_SIGNALS_TO_HANDLE=SIGTERM,SIGINT,SIGHUP,SIGQUIT,SIGUSR2
    # Each node's shell fills in its own rank: $SLURM_NODEID differs between srun's tasks.
    # shellcheck disable=SC2016
    command=(bash -c 'exec "$0" -m inat launch --machine_rank "$SLURM_NODEID" "$@"'
        "$python" --multi_gpu --num_machines "$nodes" --num_processes "$((nodes * procs))"
        --main_process_ip "$head" --main_process_port "$port" --rdzv_backend c10d
        "${launch_args[@]}" train "$@")
fi
# Threads per process: the task's CPUs shared by its processes, not every core of the node.
threads=$((${SLURM_CPUS_PER_TASK:-$procs} / procs))
((threads > 0)) || threads=1
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$threads}

echo "inat train on $nodes node(s) x $procs process(es), Slurm job ${SLURM_JOB_ID:-none}" \
    "(restart ${SLURM_RESTART_COUNT:-0})"
warned=0
# The warning goes on to every process of the job's steps; each checkpoints and stops.
trap 'warned=1; echo "time limit or preemption ahead: checkpointing, then requeueing"
    scancel --signal=USR2 "$SLURM_JOB_ID"' USR2

# srun runs in the background so that the trap runs as soon as the signal comes.
srun --kill-on-bad-exit=1 "${command[@]}" &
status=0
wait $! || status=$?
while ((status > 128)) && kill -0 $! 2>/dev/null; do # wait was cut short by the signal
    status=0
    wait $! || status=$?
done
if ((warned)) && ((status != 0 && status != 65)); then
    scontrol requeue "$SLURM_JOB_ID" || echo "could not requeue job $SLURM_JOB_ID" >&2
fi
exit "$status"
