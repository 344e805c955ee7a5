"""Sweeps on Slurm: `sbatch slurm/sweep.sh JOB` runs `inat sweep JOB --launcher slurm`.

The controller (a one-CPU job) runs a Hydra multirun over the indices of the job's points
with the submitit Slurm launcher: one array job, one task per point. Each task trains its
point in a child process (on the host or in the container image) and, when Slurm warns of a
time limit or preemption, lets the point checkpoint and requeues itself; the requeued task
resumes the point. When every task has left Slurm's queue, the controller writes the
sweep's summary.

    controller.py   run_sweep: freeze the job, wait for an earlier submission's tasks, submit
                    the points not done, wait, record silent deaths, summarize
    hydra_plugins/inat_slurm_launcher: the Hydra launcher, submitit's, waiting for every task
    queue.py        what squeue, scontrol and sacct say of the tasks; waiting until they end
    task.py         one array task: the point's process, its exit status, the requeue
    submit.py       the point's command line: host or container, one or more processes

Nothing is imported here: Hydra imports the launcher, and with it queue.py, in every
process that composes a config, which must not pay for the training stack.
"""
