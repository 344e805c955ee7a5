#!/usr/bin/env bash
# A real single-node Slurm cluster on this machine, from Debian's packages: for tests and CI.
# Needs root and a Debian or Ubuntu machine; no systemd and no cgroups needed.
#
#   scripts/slurm-cluster.sh install [PACKAGE...]
#                                      apt-get install munge, slurmctld, slurmd, slurm-client
#                                      (and the packages named), unless they are installed
#   scripts/slurm-cluster.sh start     write the config, start munge, slurmctld and slurmd, and
#                                      return once a probe job has run (a fresh, empty cluster)
#   scripts/slurm-cluster.sh stop      stop the daemons this script started
#   scripts/slurm-cluster.sh env       print what Slurm's commands need, for
#                                      eval "$(scripts/slurm-cluster.sh env)"
#
# Environment:
#   SLURM_CLUSTER_DIR   config, state and daemon logs (default: /tmp/inat-slurm)
#   SLURM_CLUSTER_CPUS  CPUs the node offers (default: the machine's); more than the machine
#                       has oversubscribes its cores, so that small jobs run side by side
#   SLURM_CLUSTER_PORT  slurmctld's port; slurmd's is the next one (default: 6817, Slurm's)
#
# Partitions: `debug` (the default; preemptible, 30 s grace after the preemption signal) and
# `high` (never preempted; its jobs preempt `debug` jobs, which are requeued). A preempted
# job first gets its --signal (e.g. submitit's USR2), then SIGTERM and SIGKILL.
set -euo pipefail

DIR=${SLURM_CLUSTER_DIR:-/tmp/inat-slurm}
PORT=${SLURM_CLUSTER_PORT:-6817}
CONF=$DIR/slurm.conf
PACKAGES=(munge slurmctld slurmd slurm-client)
export SLURM_CONF=$CONF

usage() {
    # The header comment above, without its leading '#'.
    awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "${BASH_SOURCE[0]}"
    exit 64
}

# Run "$@" until it succeeds; fail with MESSAGE after TIMEOUT seconds.
wait_for() {
    local timeout=$1 message=$2
    shift 2
    local deadline=$((SECONDS + timeout))
    until "$@" >/dev/null 2>&1; do
        if ((SECONDS >= deadline)); then
            echo "slurm-cluster: $message after ${timeout}s" >&2
            return 1
        fi
        sleep 0.2
    done
}

# Whether process PID has ended (a zombie waiting for a slow reaper counts as ended).
ended() {
    [[ ! -e /proc/$1 ]] || [[ $(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) == Z ]]
}

pid_of() {
    [[ -s $1 ]] && cat "$1"
}

munge_answers() {
    munge -n | unmunge
}

listening() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

node_idle() {
    [[ $(sinfo -h -o %t) == idle ]]
}

installed() {
    local package
    for package in "$@"; do
        [[ $(dpkg-query -W -f '${Status}' "$package" 2>/dev/null) == "install ok installed" ]] ||
            return 1
    done
}

# Install Slurm's packages and any others named, unless all are there already.
install() {
    local packages=("${PACKAGES[@]}" "$@")
    if installed "${packages[@]}"; then
        return
    fi
    if [[ $(id -u) != 0 ]]; then
        echo "slurm-cluster: installing ${packages[*]} needs root (apt-get)" >&2
        exit 77
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${packages[@]}"
}

write_config() {
    local host cpus memory
    host=$(hostname -s)
    cpus=${SLURM_CLUSTER_CPUS:-$(nproc)}
    # RealMemory must not exceed what slurmd measures; keep some for the daemons.
    memory=$(slurmd -C | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p')
    memory=$((memory * 85 / 100))
    mkdir -p "$DIR/state" "$DIR/spool"
    cat >"$CONF" <<EOF
ClusterName=inat
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmctldPort=$PORT
SlurmdPort=$((PORT + 1))
AuthType=auth/munge
# A requeued job may start again at once (the default credential lifetime delays it 120 s).
AuthInfo=cred_expire=10
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/slurmctld.log
SlurmdLogFile=$DIR/slurmd.log
# No cgroups in containers and CI sandboxes: track processes by their parent links.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
SwitchType=switch/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# Without a default, each job takes the whole node's memory and jobs run one at a time.
DefMemPerCPU=1000
SchedulerParameters=batch_sched_delay=0,sched_interval=2,bf_interval=1
KillWait=5
MailProg=/bin/true
ReturnToService=2
SlurmdParameters=config_overrides
PreemptType=preempt/partition_prio
PreemptMode=REQUEUE
# A preempted job gets its --signal first (submitit checkpoints on it), not only SIGTERM.
SlurmctldParameters=preempt_send_user_signal
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$memory State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP PriorityTier=1 GraceTime=30
PartitionName=high Nodes=ALL MaxTime=INFINITE State=UP PriorityTier=10 PreemptMode=OFF
EOF
}

start_munge() {
    if munge_answers >/dev/null 2>&1; then
        return # already running (a system service, or an earlier start)
    fi
    mkdir -p /run/munge
    chown munge:munge /run/munge
    runuser -u munge -- /usr/sbin/munged --force
    touch "$DIR/munged.ours"
    wait_for 20 "munged does not answer" munge_answers
}

start() {
    if [[ $(id -u) != 0 ]]; then
        echo "slurm-cluster: starting Slurm's daemons needs root" >&2
        exit 77
    fi
    for command in slurmctld slurmd sbatch munged; do
        if ! command -v "$command" >/dev/null && [[ ! -x /usr/sbin/$command ]]; then
            echo "slurm-cluster: $command is missing; run: $0 install" >&2
            exit 69
        fi
    done
    stop
    for port in "$PORT" "$((PORT + 1))"; do
        if listening "$port"; then
            echo "slurm-cluster: port $port is in use (another Slurm cluster?): stop it, or" \
                "set SLURM_CLUSTER_PORT" >&2
            exit 75
        fi
    done
    rm -rf "$DIR"
    mkdir -p "$DIR"
    write_config
    start_munge
    /usr/sbin/slurmctld -f "$CONF"
    wait_for 30 "slurmctld does not answer (see $DIR/slurmctld.log)" scontrol ping
    /usr/sbin/slurmd -f "$CONF"
    # `idle` alone can be stale saved state: a job that really runs is the proof.
    wait_for 60 "the node never became idle (see $DIR/slurmd.log)" node_idle
    wait_for 60 "a probe job did not run (see $DIR/slurmctld.log)" srun -N1 -n1 -t 1 true
    echo "slurm-cluster: up; eval \"\$($0 env)\" to use it"
}

stop() {
    local pids=() pid
    for file in "$DIR/slurmd.pid" "$DIR/slurmctld.pid"; do
        if pid=$(pid_of "$file") && ! ended "$pid"; then
            pids+=("$pid")
        fi
    done
    if ((${#pids[@]})); then
        scontrol shutdown >/dev/null 2>&1 || kill "${pids[@]}" 2>/dev/null || true
    fi
    if [[ -e $DIR/munged.ours ]] && pid=$(pid_of /run/munge/munged.pid); then
        kill "$pid" 2>/dev/null || true
        pids+=("$pid")
        rm -f "$DIR/munged.ours"
    fi
    for pid in "${pids[@]}"; do
        wait_for 30 "process $pid did not stop" ended "$pid"
    done
}

case ${1:-} in
install) install "${@:2}" ;;
start) start ;;
stop) stop ;;
env) echo "export SLURM_CONF=$CONF" ;;
*) usage ;;
esac
