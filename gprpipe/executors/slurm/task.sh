# The SLURM array task's bash, shared by every sbatch script gprpipe renders: `task LOG
# MARKER COMMAND...` runs one task with its output in LOG, and records a failed marker
# (format: gprpipe.pipeline.state) when the task died before writing its own.
set -o pipefail
# SIGTERM is SLURM's (a time limit or scancel): a task it reaches first never starts, and
# a running one is waited for in the background, so that the trap runs at once
trap 'stopped=1; echo "gprpipe: SIGTERM from SLURM (time limit or scancel)"; stop_container' TERM
# `stop` (an array the job script sets): the command that removes the task's container.
# A docker/podman container is no process of the job, so SLURM does not stop it, and a
# stopped client does not always stop it either (it committed its outputs after the
# cancel); removed twice, the second time in case it was still being created.
stop_container() {
    [[ -n ${stop[*]:-} ]] || return 0
    "${stop[@]}" >/dev/null 2>&1
    sleep 2
    "${stop[@]}" >/dev/null 2>&1
    return 0
}
# One command substitution per command here: bash (5.2) loses a SIGTERM that arrives
# during the first of two in one command, trap and the rest of the command with it.
resolve() {  # resolve NAME PATH: NAME=realpath of PATH, taken again when SLURM's SIGTERM
    local r     # killed it (once its trap has run, the signal is past)
    r=$(realpath "$2")
    [[ -n $r ]] || r=$(realpath "$2")
    printf -v "$1" '%s' "$r"
}
# confined THEN POINT FOLDER...: whether the point folder and each FOLDER of it are
# its own, not links out of it; if not, says so, THEN (what follows) ending the sentence
confined() {
    local then=$1 point=$2 d a b
    shift 2
    if [[ -L $point ]]; then
        echo "gprpipe: $point is a link; $then"
        return 1
    fi
    for d in "$@"; do
        if [[ ! -e $d && ! -L $d ]]; then  # (removed while the task ran: no link)
            echo "gprpipe: $d is gone; $then"
            return 1
        fi
        resolve a "$d"
        resolve b "$point"
        if [[ -L $d || $a != "$b/${d##*/}" ]]; then
            echo "gprpipe: $d is a link out of its point folder; $then"
            return 1
        fi
    done
}
# new_log LOG: open LOG made anew on descriptor $log_fd: a file of its own (noclobber:
# O_EXCL, at a name of this job's), checked to be a regular file, then renamed to LOG;
# rename replaces whatever was put at LOG (a link, a FIFO) without opening it
new_log() {
    local tmp=$1.$SLURM_JOB_ID.$RANDOM opened
    set -C
    { exec {log_fd}>"$tmp"; } 2>/dev/null
    opened=$?
    set +C
    ((opened == 0)) || return 1
    if [[ -f /dev/fd/$log_fd && ! -L $tmp ]] && mv -fT -- "$tmp" "$1" 2>/dev/null; then
        return 0
    fi
    exec {log_fd}>&-
    [[ -f $tmp && ! -L $tmp ]] && rm -f -- "$tmp"
    return 1
}
# recorded: whether the jobs.json of the run folder this job names ($GPRPIPE_SLURM_RUN, the
# folder it runs in) records this job: a folder moved, or removed and made anew by another
# run, while the job waited is no longer its run's, and the job writes nothing into it (no
# log, no marker). A job may start before its run records it (sbatch has just returned):
# the record is waited for, up to 30 s (GPRPIPE_RECORD_WAIT, for tests). The run writes
# jobs.json with json.dumps, so the line of the job reads "job_id": "<id>", exactly.
recorded() {
    local jobs=$GPRPIPE_SLURM_RUN/slurm/jobs.json n wait=${GPRPIPE_RECORD_WAIT:-30}
    local line="\"job_id\": \"$SLURM_ARRAY_JOB_ID\""
    [[ $wait =~ ^(0|[1-9][0-9]{0,3})$ ]] || wait=30  # (bash arithmetic runs $(...) in names)
    for ((n = 0; ; n++)); do  # (checked once more than it sleeps)
        if [[ -f $jobs && ! -L $jobs ]] && grep -qF -- "$line" "$jobs"; then
            return 0
        fi
        ((n < wait)) && [[ -z ${stopped:-} ]] || break
        sleep 1
    done
    echo "gprpipe: job $SLURM_ARRAY_JOB_ID is not recorded in $jobs (the run folder was" \
        "moved, or made anew by another run, since the job was submitted); the task does not run"
    return 1
}
task() {  # task LOG MARKER COMMAND...: run a task, output to LOG (and to the SLURM log)
    local log=$1 marker=$2 code=0 why last started=yes nolog d a b point=${1%/*} log_fd
    shift 2
    point=${point%/*}  # LOG is POINT/logs/NAME, MARKER POINT/.state/STEM
    # checked at submission, and again here: a link put in place of the point folder or its
    # logs/.state folder while the job waited would lead the task's writes out of the run
    confined "the task does not run" "$point" || return 1
    d=${slurm_log%/*}  # SLURM's own log (RUN/slurm/logs/...): opened before the script ran
    if [[ -n ${slurm_log:-} ]]; then
        resolve a "$d"
        resolve b "${point%/*}"
        if [[ $a != "$b/slurm/logs" ]]; then
            echo "gprpipe: $d is a link out of the run directory; the task does not run"
            return 1
        fi
    fi
    mkdir -p -- "${log%/*}" "${marker%/*}"
    confined "the task does not run" "$point" "${log%/*}" "${marker%/*}" || return 1
    rm -f -- "$log" "$marker.failed.tmp"  # replaced, never written through a symlink
    echo "gprpipe: ${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID} on $HOSTNAME, log $log"
    if [[ -n ${stopped:-} ]]; then
        code=143 started=no
    elif ! new_log "$log"; then  # (not quoted as the task's: its name is no log of it)
        echo "gprpipe: $log could not be made anew (something is at its name);" \
            "the task does not run"
        code=1 started=no nolog=yes
    else
        ("$@" 2>&1 {log_fd}>&- | tee "/dev/fd/$log_fd") &
        local job=$! again
        exec {log_fd}>&-  # (the task's own copy is its log's)
        [[ -n ${stopped:-} ]] && stop_container  # SIGTERM as it started: its container
        wait "$job" || code=$?
        # a SIGTERM (trap) ended the wait while the task was still ending: wait again; a
        # wait that finds its status already collected returns -1 or 127, not the status
        while [[ -n ${stopped:-} ]] && kill -0 "$job" 2>/dev/null; do
            wait "$job"
            again=$?
            ((again >= 0 && again != 127)) && code=$again
        done
    fi
    if ((code != 0)) && [[ ! -e $marker.done && ! -e $marker.failed ]]; then
        # the task died before writing its marker (crash, out of memory, time limit)
        why="exit code $code"
        ((code > 128)) && why="$why (signal $((code - 128)))"
        why="$why without a done/failed marker"
        if ((code == 143)) || [[ -n ${stopped:-} ]]; then  # SIGTERM: SLURM's (its log holds why)
            last=$(printf '%s' "${slurm_log:-its log}" | tr -d '"\\\n\r')  # into JSON
            # (to SLURM's log, not the task's: the task's name may stand for a link or a
            # FIFO by now, and the failed marker says it too)
            echo "gprpipe: SLURM stopped this task (a time limit or scancel; $last says which)"
            why="$why: SLURM stopped it (a time limit or scancel; $last says which)"
            [[ $started = no ]] &&
                why="SLURM stopped it before it started (a time limit or scancel; $last says which)"
        elif [[ -n ${nolog:-} ]]; then
            last=$(printf '%s' "$log" | tr -d '"\\\n\r')  # into JSON
            why="$last could not be made anew (something is at its name); the task did not run"
        else
            last=""
            [[ -f $log && ! -L $log ]] &&  # (a link's target or a FIFO is no log of the task)
                last=$(tail -n 1 "$log" | tr -d '"\\\n\r' | tr -c '[:print:]' ' ' | cut -c 1-200)
            [[ $last = *[![:space:]]* ]] && why="$why: $last"
        fi
        # a task may run for hours: its folders are checked again before the marker
        confined "no failed marker is written" "$point" "${marker%/*}" || return "$code"
@WRITE_FAILED_MARKER@
    fi
    return "$code"
}
