#!/usr/bin/env bash
# Bring a single-node SLURM cluster up and down on this Debian machine (run as root).
#
#   scripts/local-slurm.sh start    install slurm-wlm + munge if missing, write the config,
#                                   start munged/slurmctld/slurmd, wait until the node is idle
#   scripts/local-slurm.sh status   sinfo and squeue
#   scripts/local-slurm.sh stop     stop the daemons this script started
#
# Idempotent: `start` on a running cluster with an unchanged config does nothing; a changed
# config (e.g. other CPU count) restarts the SLURM daemons. There is no accounting database
# (sacct does not work); gprpipe reads job state from squeue/scontrol and marker files.
#
# Environment: GPRPIPE_SLURM_DIR (scratch dir for state/spool/pids/logs,
# default /var/tmp/gprpipe-slurm), GPRPIPE_SLURM_TIMEOUT (seconds to wait for the node,
# default 60), GPRPIPE_SLURM_CONF (default /etc/slurm/slurm.conf).
set -euo pipefail

SCRATCH=${GPRPIPE_SLURM_DIR:-/var/tmp/gprpipe-slurm}
TIMEOUT=${GPRPIPE_SLURM_TIMEOUT:-60}
CONF=${GPRPIPE_SLURM_CONF:-/etc/slurm/slurm.conf}
MARK="# written by gprpipe scripts/local-slurm.sh"
HOST=$(hostname -s)

say() { echo "local-slurm: $*"; }
die() { echo "local-slurm: error: $*" >&2; exit 1; }

need_root() {
    [[ $(id -u) -eq 0 ]] || die "run as root (it installs packages and starts system daemons)"
}

# pid of a daemon from its pid file, if that process is alive and has the expected name
pid_of() {  # name pidfile
    local name=$1 file=$2 pid
    [[ -r $file ]] || return 1
    pid=$(<"$file")
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    [[ -r /proc/$pid/comm && $(</proc/"$pid"/comm) == "$name" ]] || return 1
    echo "$pid"
}

install_packages() {
    local missing=()
    for cmd in slurmctld slurmd sinfo sbatch squeue scontrol munged munge; do
        command -v "$cmd" >/dev/null 2>&1 || missing+=("$cmd")
    done
    if ((${#missing[@]} == 0)); then return 0; fi
    command -v apt-get >/dev/null 2>&1 || die "missing ${missing[*]} and no apt-get (not Debian?)"
    say "installing slurm-wlm and munge (missing: ${missing[*]})"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null
}

start_munge() {
    mkdir -p /etc/munge /run/munge /var/lib/munge /var/log/munge
    if [[ ! -s /etc/munge/munge.key ]]; then
        say "creating munge key"
        if command -v mungekey >/dev/null 2>&1; then
            mungekey --create --force --keyfile=/etc/munge/munge.key
        else
            dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
        fi
    fi
    if id munge >/dev/null 2>&1; then
        chown munge:munge /etc/munge/munge.key /run/munge /var/lib/munge /var/log/munge
    fi
    chmod 0400 /etc/munge/munge.key
    chmod 0755 /run/munge
    if munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then
        return 0  # a munged (ours or the system's) already answers
    fi
    say "starting munged"
    if id munge >/dev/null 2>&1 && command -v runuser >/dev/null 2>&1; then
        runuser -u munge -- munged --force || munged --force
    else
        munged --force
    fi
    touch "$SCRATCH/munged.ours"
    for _ in $(seq 50); do
        munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    die "munged does not answer (see /var/log/munge/munged.log)"
}

write_conf() {  # prints "changed" when the file was (re)written
    local cpus mem_kb mem_mb margin tmp
    cpus=$(nproc)
    mem_kb=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)
    mem_mb=$((mem_kb / 1024))
    margin=$((mem_mb / 20))  # keep 5% (at least 256 MB) for the system and the daemons
    if ((margin < 256)); then margin=256; fi
    mem_mb=$((mem_mb - margin))
    mkdir -p "$(dirname "$CONF")"
    tmp=$(mktemp "$CONF.XXXXXX")
    cat >"$tmp" <<EOF
$MARK
# single-node cluster for tests and workstations; remove with: scripts/local-slurm.sh stop
ClusterName=gprpipe
SlurmctldHost=$HOST
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,sched_interval=2,bf_interval=2
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
ReturnToService=2
MaxArraySize=100001
MaxJobCount=100000
MinJobAge=300
SlurmctldTimeout=30
SlurmdTimeout=60
StateSaveLocation=$SCRATCH/state
SlurmdSpoolDir=$SCRATCH/spool
SlurmctldPidFile=$SCRATCH/slurmctld.pid
SlurmdPidFile=$SCRATCH/slurmd.pid
SlurmctldLogFile=$SCRATCH/log/slurmctld.log
SlurmdLogFile=$SCRATCH/log/slurmd.log
NodeName=$HOST CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF
    chmod 0644 "$tmp"
    if [[ -f $CONF ]] && cmp -s "$tmp" "$CONF"; then
        rm -f "$tmp"
        return 0
    fi
    if [[ -f $CONF ]] && ! head -n1 "$CONF" | grep -qF "$MARK"; then
        cp -p "$CONF" "$CONF.before-gprpipe"
        say "kept the previous $CONF as $CONF.before-gprpipe" >&2
    fi
    mv -f "$tmp" "$CONF"
    echo changed
}

stop_daemon() {  # name pidfile
    local name=$1 file=$2 pid
    pid=$(pid_of "$name" "$file") || { rm -f "$file"; return 0; }
    say "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 100); do
        [[ -d /proc/$pid ]] || { rm -f "$file"; return 0; }
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    rm -f "$file"
}

node_state() {
    sinfo -h -N -n "$HOST" -o "%T" 2>/dev/null | head -n1
}

wait_idle() {
    local t0=$SECONDS state="" resumed=0
    while ((SECONDS - t0 < TIMEOUT)); do
        state=$(node_state || true)
        case $state in
            idle | mixed | allocated | completing)
                say "node $HOST is $state; ready after $((SECONDS - t0)) s"
                return 0
                ;;
            down* | drain*)
                if ((resumed == 0)); then
                    scontrol update NodeName="$HOST" State=RESUME >/dev/null 2>&1 || true
                    resumed=1
                fi
                ;;
        esac
        sleep 0.5
    done
    die "node $HOST not idle after ${TIMEOUT} s (state: '${state:-no answer}'); see $SCRATCH/log/slurmctld.log and $SCRATCH/log/slurmd.log"
}

cmd_start() {
    need_root
    install_packages
    mkdir -p "$SCRATCH"/{state,spool,log}
    start_munge
    local changed
    changed=$(write_conf)
    if [[ $changed == changed ]]; then
        say "wrote $CONF"
        if pid_of slurmd "$SCRATCH/slurmd.pid" >/dev/null || pid_of slurmctld "$SCRATCH/slurmctld.pid" >/dev/null; then
            say "configuration changed: restarting the SLURM daemons"
            stop_daemon slurmd "$SCRATCH/slurmd.pid"
            stop_daemon slurmctld "$SCRATCH/slurmctld.pid"
        fi
    fi
    if ! pid_of slurmctld "$SCRATCH/slurmctld.pid" >/dev/null; then
        say "starting slurmctld"
        slurmctld -f "$CONF" || die "slurmctld failed to start; see $SCRATCH/log/slurmctld.log"
    fi
    # slurmd registers with slurmctld; wait until the controller answers first
    for _ in $(seq 100); do
        scontrol ping 2>/dev/null | grep -q "UP" && break
        sleep 0.1
    done
    if ! pid_of slurmd "$SCRATCH/slurmd.pid" >/dev/null; then
        say "starting slurmd"
        slurmd -f "$CONF" || die "slurmd failed to start; see $SCRATCH/log/slurmd.log"
    fi
    wait_idle
}

cmd_stop() {
    need_root
    stop_daemon slurmd "$SCRATCH/slurmd.pid"
    stop_daemon slurmctld "$SCRATCH/slurmctld.pid"
    if [[ -f $SCRATCH/munged.ours ]]; then
        stop_daemon munged /run/munge/munged.pid
        rm -f "$SCRATCH/munged.ours"
    fi
    say "stopped"
}

cmd_status() {
    local rc=0
    for d in slurmctld slurmd; do
        if pid=$(pid_of "$d" "$SCRATCH/$d.pid"); then
            say "$d running (pid $pid)"
        else
            say "$d not running"
            rc=1
        fi
    done
    command -v sinfo >/dev/null 2>&1 || { say "SLURM is not installed"; return 1; }
    sinfo || rc=1
    squeue || rc=1
    return $rc
}

case ${1:-} in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    restart) cmd_stop && cmd_start ;;
    *)
        echo "usage: $0 start|stop|status|restart" >&2
        exit 2
        ;;
esac
