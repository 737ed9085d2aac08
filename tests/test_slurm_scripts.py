"""SLURM executor without a cluster: exact sbatch text, jobs.json, missing sbatch."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from gprpipe.engines import get_engine
from gprpipe.errors import GprpipeError
from gprpipe.executors.slurm import (
    NO_SBATCH,
    SlurmOptions,
    group_name,
    load_jobs,
    poll_details,
    render_scripts,
    resubmit,
    submit,
)
from gprpipe.executors.slurm.render import run_function
from gprpipe.pipeline.state import write_state
from gprpipe.pipeline.task import Task

OPTIONS = SlurmOptions(
    partition="debug",
    account="hps",
    time="00:30:00",
    memory="2G",
    cpus_per_task=1,
    max_parallel=4,
    extra=("--constraint=avx2", "#SBATCH --exclusive"),
)
ENV = {"GPRPIPE_TEST": "a b", "OMP_NUM_THREADS": "1"}


def make_task(run: Path, step: str, part: str | None = None, deps: tuple[str, ...] = ()) -> Task:
    point_dir = run / "p0"
    tid = f"p0/{step}" + (f"/{part}" if part else "")
    argv = ["step", step, "--point-dir", str(point_dir)]
    if part:
        argv += ["--part", part]
    argv += ["--task", tid]
    return Task(
        id=tid, point="p0", step=step, point_dir=point_dir, argv=tuple(argv), part=part, deps=deps
    )


def plan(run: Path) -> list[Task]:
    """load -> fit (2 chunks) -> fit merge -> limit (1 chunk) -> limit merge; inject after fit."""
    load = make_task(run, "load")
    fits = [make_task(run, "fit", f"2015-00{k}", (load.id,)) for k in range(2)]
    fit_merge = make_task(run, "fit", "merge", tuple(t.id for t in fits))
    limit = make_task(run, "limit", "2015-000", (load.id, fit_merge.id))
    limit_merge = make_task(run, "limit", "merge", (limit.id,))
    inject = make_task(run, "inject", "2015-40MeV", (load.id, fit_merge.id))
    return [load, *fits, fit_merge, limit, limit_merge, inject]


def submitted_plan(run: Path, job_id: str, log: str | None = None) -> list[Task]:
    """:func:`plan`'s tasks, recorded in the run's jobs.json as submitted in one job
    (``log``: its SLURM log, relative to the run, ``%a`` the array index)."""
    tasks = plan(run)
    (run / "slurm").mkdir(parents=True)
    job = {"job_id": job_id, "tasks": [t.id for t in tasks], "log": log}
    sub = {"kind": "run", "dry_run": False, "jobs": [job]}
    (run / "slurm" / "jobs.json").write_text(
        json.dumps({"format": 1, "run_dir": str(run.absolute()), "submissions": [sub]})
    )
    return tasks


ELEMENT_LOG = '"$SLURM_ARRAY_JOB_ID"_"$SLURM_ARRAY_TASK_ID".out'  # (%A_%a of its name)


def header(group: str, array: str, log: Path, comment: str, run: Path) -> str:
    return f"""#!/bin/bash
#SBATCH --job-name=gprpipe-{group}
#SBATCH --array={array}
#SBATCH --output={log}
#SBATCH --time=00:30:00
#SBATCH --mem=2G
#SBATCH --cpus-per-task=1
#SBATCH --partition=debug
#SBATCH --account=hps
#SBATCH --constraint=avx2
#SBATCH --exclusive
# gprpipe: {comment}; index -> task id in {run}/slurm/jobs.json
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 VECLIB_MAXIMUM_THREADS=1 \
NUMEXPR_NUM_THREADS=1 PYTHONUNBUFFERED=1
export GPRPIPE_TEST='a b'
export GPRPIPE_SLURM_RUN={run}
cd {run} || exit 1
slurm_log={log.parent}/{log.name.replace("%A_%a.out", "")}{ELEMENT_LOG}
"""


RUN_FUNCTION = r"""set -o pipefail
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
        rm -f "$marker.failed.tmp"
        set -o noclobber
        if printf '{"state": "failed", "time": %s, "host": "%s", "slurm_job": "%s", %s}\n' \
            "${EPOCHSECONDS:-$(date +%s)}" "$HOSTNAME" "${SLURM_JOB_ID:-}" \
            "\"message\": \"$why\"" >"$marker.failed.tmp"; then
            mv -f "$marker.failed.tmp" "$marker.failed"
        fi
        set +o noclobber
        rm -f "$marker.running" "$marker.progress"
    fi
    return "$code"
}
recorded || exit 1
case "$SLURM_ARRAY_TASK_ID" in
"""


def case_line(i: int, task: Task) -> str:
    cmd = shlex.join([sys.executable, "-m", "gprpipe", *task.argv])
    d = task.point_dir
    return f"    {i}) task {d}/logs/{task.slug}.log {d}/.state/{task.slug} {cmd} ;;\n"


FOOTER = """\
    *) echo "gprpipe: no task for array index $SLURM_ARRAY_TASK_ID" >&2; exit 2 ;;
esac
exit $?
"""


def test_exact_script_text(tmp_path: Path) -> None:
    run = tmp_path / "run"
    tasks = plan(run)
    scripts = render_scripts(
        tasks, run_dir=run, engine=get_engine("local"), options=OPTIONS, env=ENV
    )
    assert [s.name for s in scripts] == [
        "01_load",
        "02_fit",
        "03_fit-merge",
        "04_limit",
        "05_limit-merge",
        "06_inject",
    ]
    assert [s.after for s in scripts] == [
        (),
        ("01_load",),
        ("02_fit",),
        ("01_load", "03_fit-merge"),
        ("04_limit",),
        ("01_load", "03_fit-merge"),
    ]
    logs = run / "slurm" / "logs"
    load, fit0, fit1, fit_merge = tasks[:4]
    assert scripts[0].text == (
        header("load", "0-0%4", logs / "01_load_%A_%a.out", "group load, 1 task(s)", run)
        + RUN_FUNCTION
        + case_line(0, load)
        + FOOTER
    )
    assert scripts[1].text == (
        header(
            "fit", "0-1%4", logs / "02_fit_%A_%a.out", "group fit, 2 task(s), after 01_load", run
        )
        + RUN_FUNCTION
        + case_line(0, fit0)
        + case_line(1, fit1)
        + FOOTER
    )
    assert scripts[2].text == (
        header(
            "fit-merge",
            "0-0%4",
            logs / "03_fit-merge_%A_%a.out",
            "group fit-merge, 1 task(s), after 02_fit",
            run,
        )
        + RUN_FUNCTION
        + case_line(0, fit_merge)
        + FOOTER
    )
    assert scripts[1].task_ids == ("p0/fit/2015-000", "p0/fit/2015-001")
    assert scripts[1].path == run / "slurm" / "02_fit.sbatch"
    assert group_name(fit_merge) == "fit-merge"


def test_minimal_options_and_task_env(tmp_path: Path) -> None:
    run = tmp_path / "run"
    task = make_task(run, "load")
    task.env["GPRPIPE_SEED"] = "7"
    (script,) = render_scripts(
        [task], run_dir=run, engine=get_engine("local"), options=SlurmOptions(), env={}
    )
    lines = script.text.splitlines()
    assert lines[1:7] == [
        "#SBATCH --job-name=gprpipe-load",
        "#SBATCH --array=0-0",
        f"#SBATCH --output={run}/slurm/logs/01_load_%A_%a.out",
        "#SBATCH --time=01:00:00",
        "#SBATCH --mem=4G",
        "#SBATCH --cpus-per-task=1",
    ]
    assert not any(
        x.startswith(("#SBATCH --partition", "#SBATCH --account", "#SBATCH --qos")) for x in lines
    )
    assert "    0) GPRPIPE_SEED=7 task " in script.text


def test_every_option_the_scripts_set_is_refused_in_slurm_extra(tmp_path: Path) -> None:
    """The config refuses in ``slurm.extra`` each sbatch option the rendered scripts (and
    the sbatch command line) set themselves: the schema's list covers what the renderer
    writes, and each managed option says which key sets it."""
    from gprpipe.config.schema import _SBATCH_MANAGED

    run = tmp_path / "run"
    scripts = render_scripts(
        plan(run), run_dir=run, engine=get_engine("local"), options=OPTIONS, env=ENV
    )
    written = {
        line.split()[1].split("=")[0].removeprefix("--")
        for s in scripts
        for line in s.text.splitlines()
        if line.startswith("#SBATCH ")
    } - {x.removeprefix("#SBATCH ").split("=")[0].removeprefix("--") for x in OPTIONS.extra}
    assert written == {
        "job-name",
        "array",
        "output",
        "time",
        "mem",
        "cpus-per-task",
        "partition",
        "account",
    }
    assert written | {"dependency", "parsable"} <= set(_SBATCH_MANAGED)
    for name, key in _SBATCH_MANAGED.items():
        if key:  # a key of [slurm] that sets it
            assert key in SlurmOptions.__dataclass_fields__, name


def test_dry_run_writes_scripts_and_jobs_json(tmp_path: Path) -> None:
    run = tmp_path / "run"
    tasks = plan(run)
    for _ in range(2):  # a second dry run replaces the first preview
        sub = submit(
            tasks, run_dir=run, engine=get_engine("local"), options=OPTIONS, env=ENV, dry_run=True
        )
    assert sub.dry_run and sub.job_ids == {}
    assert sub.dependencies == {
        "02_fit": "afterany:<01_load>",
        "03_fit-merge": "afterany:<02_fit>",
        "04_limit": "afterany:<01_load>:<03_fit-merge>",
        "05_limit-merge": "afterany:<04_limit>",
        "06_inject": "afterany:<01_load>:<03_fit-merge>",
    }
    for s in sub.scripts:
        assert s.path.read_text() == s.text
    assert (run / "slurm" / "logs").is_dir()
    assert "# sbatch --parsable '--dependency=afterany:<01_load>' " in sub.text()

    data = json.loads((run / "slurm" / "jobs.json").read_text())
    assert data["run_dir"] == str(run)
    (rec,) = data["submissions"]
    assert rec["kind"] == "submit" and rec["dry_run"] is True
    assert rec["options"] == {
        "partition": "debug",
        "account": "hps",
        "qos": None,
        "time": "00:30:00",
        "memory": "2G",
        "cpus_per_task": 1,
        "max_parallel": 4,
        "extra": ["--constraint=avx2", "#SBATCH --exclusive"],
    }
    assert rec["jobs"][1] == {
        "script": "slurm/02_fit.sbatch",
        "group": "fit",
        "job_id": None,
        "array": "0-1",
        "after": ["01_load"],
        "dependency": "afterany:<01_load>",
        "log": "slurm/logs/02_fit_%A_%a.out",
        "tasks": ["p0/fit/2015-000", "p0/fit/2015-001"],
    }
    assert [j["tasks"] for j in rec["jobs"]] == [
        ["p0/load"],
        ["p0/fit/2015-000", "p0/fit/2015-001"],
        ["p0/fit/merge"],
        ["p0/limit/2015-000"],
        ["p0/limit/merge"],
        ["p0/inject/2015-40MeV"],
    ]


def test_resubmit_maps_indices_anew_with_dependents(tmp_path: Path) -> None:
    run = tmp_path / "run"
    tasks = plan(run)
    submit(tasks, run_dir=run, engine=get_engine("local"), options=OPTIONS, env=ENV, dry_run=True)
    # pretend the first submission was real (job ids 101..106)
    data = load_jobs(run)
    data["submissions"][0]["dry_run"] = False
    for k, job in enumerate(data["submissions"][0]["jobs"]):
        job["job_id"] = str(101 + k)
    (run / "slurm" / "jobs.json").write_text(json.dumps(data))

    sub = resubmit(
        ["p0/fit/2015-001"],
        tasks=tasks,
        run_dir=run,
        engine=get_engine("local"),
        options=OPTIONS,
        env=ENV,
        dry_run=True,
    )
    assert [s.name for s in sub.scripts] == [
        "07_fit",
        "08_fit-merge",
        "09_limit",
        "10_limit-merge",
        "11_inject",
    ]
    assert sub.scripts[0].task_ids == ("p0/fit/2015-001",)
    assert "#SBATCH --array=0-0%4" in sub.scripts[0].text
    assert "--part 2015-001" in sub.scripts[0].text and "2015-000" not in sub.scripts[0].text
    assert sub.dependencies["08_fit-merge"] == "afterany:<07_fit>"
    subs = load_jobs(run)["submissions"]
    assert [(s["kind"], s["dry_run"]) for s in subs] == [("submit", False), ("resubmit", True)]

    only = resubmit(
        ["p0/fit/2015-001"],
        tasks=tasks,
        run_dir=run,
        engine=get_engine("local"),
        options=OPTIONS,
        env=ENV,
        dry_run=True,
        with_dependents=False,
    )
    assert [s.name for s in only.scripts] == ["07_fit"]
    with pytest.raises(GprpipeError, match="no task 'p0/nope'"):
        resubmit(
            ["p0/nope"],
            tasks=tasks,
            run_dir=run,
            engine=get_engine("local"),
            options=OPTIONS,
            env=ENV,
            dry_run=True,
        )


def test_missing_sbatch_is_one_sentence(tmp_path: Path, monkeypatch) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    run = tmp_path / "run"
    with pytest.raises(GprpipeError) as err:
        submit(plan(run), run_dir=run, engine=get_engine("local"), options=OPTIONS, env=ENV)
    assert str(err.value) == (
        "no SLURM here: sbatch not found; submit from a login node or use --executor local"
    )
    assert str(err.value) == NO_SBATCH
    assert not (run / "slurm").exists()
    # from the command line: refused before the run folder is written (it was after)
    from conftest import QUICKSTART, run_cli_here

    out = tmp_path / "cli"
    code, _, e = run_cli_here(
        "run", QUICKSTART, "--executor", "slurm", "--set", f"base.output={out}"
    )
    assert (code, e.strip()) == (1, f"error: {NO_SBATCH}")
    assert not out.exists()


def test_poll_without_submission_reads_markers(tmp_path: Path) -> None:
    run = tmp_path / "run"
    tasks = plan(run)
    write_state(tasks[0].point_dir, tasks[0].slug, "done")
    write_state(tasks[1].point_dir, tasks[1].slug, "failed", "mass 0.999 GeV is outside")
    details = poll_details(run, tasks)
    assert details["p0/load"].state == "done"
    assert details["p0/fit/2015-000"].state == "failed"
    assert details["p0/fit/2015-000"].message == "mass 0.999 GeV is outside"
    assert {details[t.id].state for t in tasks[2:]} == {"pending"}
    assert not any(s.active for s in details.values())


def test_options_are_checked() -> None:
    with pytest.raises(GprpipeError, match="max_parallel"):
        SlurmOptions(max_parallel=0)
    with pytest.raises(GprpipeError, match=r"slurm\.time"):
        SlurmOptions(time="1 hour")


def test_group_larger_than_max_array_size_is_split(tmp_path: Path) -> None:
    run = tmp_path / "run"
    load = make_task(run, "load")
    fits = [make_task(run, "fit", f"2015-00{k}", (load.id,)) for k in range(5)]
    merge = make_task(run, "fit", "merge", tuple(t.id for t in fits))
    scripts = render_scripts(
        [load, *fits, merge],
        run_dir=run,
        engine=get_engine("local"),
        options=SlurmOptions(),
        env={},
        max_array_size=2,
    )
    assert [(s.name, len(s.task_ids)) for s in scripts] == [
        ("01_load", 1),
        ("02_fit", 2),
        ("03_fit", 2),
        ("04_fit", 1),
        ("05_fit-merge", 1),
    ]
    assert scripts[4].after == ("02_fit", "03_fit", "04_fit")
    assert "#SBATCH --array=0-1\n" in scripts[2].text
    assert (
        "# gprpipe: group fit (part 2 of 3: MaxArraySize is 2), 2 task(s), after 01_load;"
        in scripts[2].text
    )
    assert scripts[3].task_ids == ("p0/fit/2015-004",)


def test_a_dry_run_previews_the_split_the_submission_makes(tmp_path, monkeypatch) -> None:
    """The preview rendered one array of every group whatever the cluster's MaxArraySize
    (sbatch would refuse it; the submission splits it). The cluster's answer is replaced
    here: this cluster's MaxArraySize is 100001."""
    from gprpipe.executors import slurm

    monkeypatch.setattr(slurm, "max_array_size", lambda: 2)
    run = tmp_path / "run"
    load = make_task(run, "load")
    fits = [make_task(run, "fit", f"2015-00{k}", (load.id,)) for k in range(3)]
    text = slurm.SlurmExecutor(run, get_engine("local"), SlurmOptions()).preview([load, *fits])
    assert [ln for ln in text.splitlines() if ln.startswith("# ----")] == [
        "# ---- 01_load",
        "# ---- 02_fit",
        "# ---- 03_fit",
    ]


def test_a_finished_task_whose_job_slurm_still_lists_does_not_block_a_run(tmp_path: Path) -> None:
    """A job SLURM still lists as RUNNING after its task wrote the done marker (its script
    ending, the epilogue) is the task's, and judged by the marker: a run of the folder
    right after the last task finished was refused as if an earlier run's job were queued
    (seen once in a suite run). An active job that no task of the plan owns still refuses."""
    from gprpipe.executors.slurm.reconcile import busy
    from gprpipe.executors.slurm.scheduler import Listed

    run = tmp_path / "run"
    tasks = submitted_plan(run, "2106")
    for t in tasks:
        write_state(t.point_dir, t.slug, "done")
    finished = {f"2106_{i}": Listed("COMPLETED", 1.0) for i in range(len(tasks))}
    last = {**finished, f"2106_{len(tasks) - 1}": Listed("RUNNING", None)}
    assert busy(run, tasks, finished, grace=20.0) == ""
    assert busy(run, tasks, last, grace=20.0) == ""
    cancel = f"gprpipe cancel {run}"
    # an earlier config's job (no task of this plan) still writes into the folder
    foreign = {**last, "2099_0": Listed("PENDING", None)}
    assert busy(run, tasks, foreign, grace=20.0) == (
        f"{run} is in use by SLURM job 2099_0 (queued by an earlier run of the folder): "
        f"wait for it or cancel the run's jobs with: {cancel}"
    )
    assert busy(run, tasks, foreign, grace=20.0, others=False) == ""
    # a task of the plan whose job runs without its marker yet
    write_state(tasks[-1].point_dir, tasks[-1].slug, "running")
    assert busy(run, tasks, last, grace=20.0) == (
        f"{run} is in use by SLURM job 2106_{len(tasks) - 1} (task {tasks[-1].id} is "
        f"running): wait for it or cancel the run's jobs with: {cancel}"
    )


def test_a_task_the_job_refused_to_run_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The job's bash refuses a task whose .state folder became a link out of the run (it
    cannot write a marker there): status said the job was killed or out of memory, quoting
    the last line of an earlier attempt's task log. It now gives the refusal from SLURM's
    log. (sacct is replaced by an empty answer: this job id is not the cluster's.)"""
    from gprpipe.executors.slurm.reconcile import reconcile
    from gprpipe.executors.slurm.scheduler import Listed

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sacct").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "sacct").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    run = tmp_path / "run"
    tasks = submitted_plan(run, "2107", "slurm/logs/01_x_%a.out")
    (run / "slurm" / "logs").mkdir()
    t = tasks[0]
    (t.point_dir / "logs").mkdir(parents=True)
    (t.point_dir / "logs" / f"{t.slug}.log").write_text("ValueError: an earlier attempt\n")
    refusal = (
        f"gprpipe: {t.point_dir / '.state'} is a link out of its point folder; the task "
        "does not run"
    )
    slurm_log = run / "slurm" / "logs" / "01_x_0.out"
    slurm_log.write_text(f"gprpipe: 2107_0 on node, log x\n{refusal}\n")
    ended = {f"2107_{i}": Listed("FAILED", 1.0) for i in range(len(tasks))}
    status, answered = reconcile(run, tasks[:2], grace=1.0, queue=ended)
    assert answered
    assert status[t.id].state == "failed"
    assert status[t.id].message == (f"SLURM job 2107_0 ran nothing: {refusal[9:]}; see {slurm_log}")
    # a task killed without a refusal keeps the old message with its own log's last line
    assert status[tasks[1].id].message.startswith(
        "SLURM job 2107_1 ended FAILED without a done/failed marker (killed, out of memory"
    )


def test_a_requeued_element_running_again_is_running_not_its_earlier_attempts_state(
    tmp_path: Path,
):
    """``scontrol requeue`` of a running element: its first attempt's bash wrote a failed
    marker (SIGTERM, exit 143) and SLURM ran the element again; until the new attempt's
    task wrote its own marker, status said failed while SLURM said RUNNING (a review: a
    --wait poll then could end the run as failed). A done/failed marker counts for a
    running element only when written after the element started."""
    import time

    from gprpipe.executors.slurm.reconcile import reconcile
    from gprpipe.executors.slurm.scheduler import Listed
    from gprpipe.pipeline.state import write_state

    run = tmp_path / "run"
    tasks = submitted_plan(run, "2107")
    t = tasks[0]
    write_state(t.point_dir, t.slug, "failed", "exit code 143 without a done/failed marker")
    started = time.time() + 5.0  # the second attempt, after the first attempt's marker
    queue = {f"2107_{i}": Listed("RUNNING", None, started) for i in range(len(tasks))}
    status, _ = reconcile(run, tasks[:1], grace=1.0, queue=queue)
    assert (status[t.id].state, status[t.id].active) == ("running", True)
    write_state(t.point_dir, t.slug, "done", "1 s")  # the attempt that runs now, ending
    queue = {e: Listed("RUNNING", None, time.time() - 5.0) for e in queue}
    status, _ = reconcile(run, tasks[:1], grace=1.0, queue=queue)
    assert (status[t.id].state, status[t.id].active) == ("done", False)
    # squeue gives no start (an older SLURM): the marker is trusted, as before
    queue = {e: Listed("RUNNING", None) for e in queue}
    write_state(t.point_dir, t.slug, "failed", "x")
    assert reconcile(run, tasks[:1], grace=1.0, queue=queue)[0][t.id].state == "failed"


def squeue_down(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An ``squeue`` first on PATH that times out as a busy controller's does; its folder."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    squeue = bin_dir / "squeue"
    squeue.write_text("#!/bin/sh\necho 'squeue: error: Socket timed out' >&2\nexit 1\n")
    squeue.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    return bin_dir


def test_wait_ends_when_every_marker_is_written_though_squeue_does_not_answer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--wait`` with squeue down went on for its whole timeout (120 s) and failed, every
    task's done marker written 15 s after submission (a review): once every task has a
    done or failed marker no job is left to wait for."""
    import gprpipe.executors.slurm as slurm

    run = tmp_path / "run"
    tasks = submitted_plan(run, "606")
    squeue_down(tmp_path, monkeypatch)
    monkeypatch.setattr(slurm, "UNREACHABLE_TIMEOUT", 0.5)
    for t in tasks:
        write_state(t.point_dir, t.slug, "done")
    assert slurm.wait(run, tasks, first=0.01, interval=0.05) is True
    write_state(tasks[-1].point_dir, tasks[-1].slug, "failed", "boom")
    assert slurm.wait(run, tasks, first=0.01, interval=0.05) is False
    write_state(tasks[-1].point_dir, tasks[-1].slug, "running")  # may still run: it waits
    with pytest.raises(GprpipeError, match="SLURM did not answer"):
        slurm.wait(run, tasks, first=0.01, interval=0.05)


def test_a_folder_whose_jobs_slurm_cannot_answer_for_is_not_run_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A review: when squeue did not answer (a busy controller), no job counted as active,
    so a run or rerun submitted a second job for a task whose first may still run (its
    running marker cleared, both writing the same outputs). Refused now, until SLURM
    answers, while a job of the folder lacks a done/failed marker; a folder whose jobs all
    finished runs as before."""
    from gprpipe.executors.slurm import SlurmExecutor
    from gprpipe.executors.slurm.reconcile import busy

    run = tmp_path / "run"
    tasks = submitted_plan(run, "505")
    for t in tasks[:-1]:
        write_state(t.point_dir, t.slug, "done")
    write_state(tasks[-1].point_dir, tasks[-1].slug, "running")
    said = (
        f"SLURM does not answer (squeue): gprpipe cannot tell whether job "
        f"505_{len(tasks) - 1} of task {tasks[-1].id} still runs in {run}; try again when "
        "squeue answers."
    )
    assert busy(run, tasks, None, grace=20.0) == said
    assert busy(run, tasks[:-1], None, grace=20.0, others=False) == ""
    assert busy(run, tasks[:-1], None, grace=20.0) == (  # another run's job: may still run
        f"SLURM does not answer (squeue): gprpipe cannot tell whether job 505_"
        f"{len(tasks) - 1} of an earlier run of the folder still runs in {run}; try again "
        "when squeue answers."
    )
    # through the executor, with an squeue that times out as a busy controller's does
    bin_dir = squeue_down(tmp_path, monkeypatch)
    ex = SlurmExecutor(run, get_engine("local"), SlurmOptions())
    with pytest.raises(GprpipeError) as err:
        ex.refuse_if_busy(tasks)
    assert str(err.value) == said
    write_state(tasks[-1].point_dir, tasks[-1].slug, "done")
    ex.refuse_if_busy(tasks)  # every job finished: nothing to wait for
    assert busy(run, tasks[:-1], None, grace=20.0) == ""  # another run's, finished
    # a rerun of the inject task: its upstream jobs (load, fit merge) cannot be asked
    # after, so it waits for none; refused while one of them has no finished marker,
    # before any script is written (a review: a finished one refused every rerun)
    sbatch = bin_dir / "sbatch"
    sbatch.write_text("#!/bin/sh\necho 9999\n")
    sbatch.chmod(0o755)
    inject = tasks[-1]
    write_state(tasks[3].point_dir, tasks[3].slug, "running")  # the fit merge
    before = sorted(p.name for p in (run / "slurm").iterdir())
    with pytest.raises(GprpipeError) as err:
        resubmit([inject], run_dir=run, engine=get_engine("local"), options=OPTIONS, env=ENV)
    assert str(err.value) == (
        f"SLURM does not answer (squeue): gprpipe cannot tell whether job 505_3 of task "
        f"{tasks[3].id} still runs in {run}, and the tasks to submit would not wait for it; "
        "try again when squeue answers."
    )
    assert sorted(p.name for p in (run / "slurm").iterdir()) == before
    write_state(tasks[3].point_dir, tasks[3].slug, "done")
    sub = resubmit([inject], run_dir=run, engine=get_engine("local"), options=OPTIONS, env=ENV)
    assert list(sub.job_ids.values()) == ["9999"] and not sub.dependencies


def test_container_tasks_name_the_command_that_removes_their_container(tmp_path: Path) -> None:
    """Each case arm of a docker/podman script sets ``stop`` (run by the SIGTERM trap of
    task.sh): the container is no process of the job, and SLURM alone would leave it
    running after a cancel. Docker's line is checked by its text only (no daemon here)."""
    from gprpipe.engines.base import container_name

    run = tmp_path / "run"
    tasks = plan(run)
    for name in ("podman", "docker"):
        engine = get_engine(name, image="localhost/gprpipe:x", check_version=False)
        engine._digest = ""  # type: ignore[attr-defined]  # no image lookup
        script = render_scripts(
            tasks[:1], run_dir=run, engine=engine, options=OPTIONS, env=ENV, check_paths=False
        )[0]
        arm = next(line for line in script.text.splitlines() if line.startswith("    0) "))
        cname = container_name(tasks[0], run)
        now = " -t 0" if name == "podman" else ""  # podman's rm -f waits 10 s without it
        assert arm.startswith(f"    0) stop=({name} rm -f{now} {cname}); task {run}/p0/logs/")
        assert f" {name} run --rm --init --name {cname} " in arm
        # the CPUs the job asked for limit the figure workers inside the container too
        assert " -e SLURM_CPUS_PER_TASK=1 " in arm
    local = render_scripts(
        tasks[:1], run_dir=run, engine=get_engine("local"), options=OPTIONS, env=ENV
    )[0]
    assert "stop=(" not in local.text.split('case "$SLURM_ARRAY_TASK_ID" in')[1]


def test_slurm_logs_of_elements_are_absolute_whatever_the_folder_asked_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`gprpipe status n1` from the run's parent folder wrote 'see ... and
    n1/slurm/logs/02_fit_0.out' into a failed marker: a path that is wrong read from
    anywhere else (a review)."""
    from gprpipe.executors.slurm.jobs import elements, jobs_path

    run = tmp_path / "n1"
    jobs_path(run).parent.mkdir(parents=True)
    sub = {"jobs": [{"job_id": "8214", "log": "slurm/logs/02_fit_%a.out", "tasks": ["a", "b"]}]}
    jobs_path(run).write_text(json.dumps({"format": 1, "submissions": [sub]}))
    monkeypatch.chdir(tmp_path)
    assert elements(Path("n1")) == {
        "a": ("8214", 0, run / "slurm" / "logs" / "02_fit_0.out"),
        "b": ("8214", 1, run / "slurm" / "logs" / "02_fit_1.out"),
    }


def _recorded(run: Path, job: str, wait: str = "2") -> subprocess.CompletedProcess[str]:
    """The job script's ``recorded`` check for array job ``job`` of the run folder ``run``."""
    return subprocess.run(
        ["bash", "-c", run_function() + "\nrecorded\n"],
        capture_output=True,
        text=True,
        timeout=60,
        env={
            "PATH": "/usr/bin:/bin",
            "GPRPIPE_SLURM_RUN": str(run),
            "SLURM_ARRAY_JOB_ID": job,
            "GPRPIPE_RECORD_WAIT": wait,
        },
    )


def test_a_job_runs_only_in_the_folder_whose_jobs_json_records_it(tmp_path: Path) -> None:
    """A run folder moved while its jobs waited, and another run made at its old path: the
    old jobs named that path and ran their tasks inside the new run, writing its logs,
    markers and outputs (a review). A job now runs only where jobs.json records it (its
    id exactly: 2107 is not 21070), waiting a while for a run that records it late."""
    import threading
    import time

    run = tmp_path / "run"
    submitted_plan(run, "21070")
    res = _recorded(run, "2107")
    assert res.returncode == 1
    assert res.stdout.strip() == (
        f"gprpipe: job 2107 is not recorded in {run}/slurm/jobs.json (the run folder was "
        "moved, or made anew by another run, since the job was submitted); the task does not run"
    )
    assert _recorded(run, "21070").returncode == 0
    assert _recorded(tmp_path / "gone", "21070").returncode == 1  # no folder, no jobs.json
    # a hostile wait is no arithmetic of bash's (it would run the command in the name)
    res = _recorded(run, "21070", "a[$(touch " + str(tmp_path / "pwned") + ")]")
    assert res.returncode == 0 and not (tmp_path / "pwned").exists()
    # no wait, or one with a leading zero (no number of bash's): checked once all the same
    assert [_recorded(run, "21070", w).returncode for w in ("0", "08", "")] == [0, 0, 0]
    t0 = time.monotonic()
    assert _recorded(run, "2107", "0").returncode == 1 and time.monotonic() - t0 < 5  # at once
    # a jobs.json that names no folder (or this one) records this folder's jobs
    from gprpipe.executors.slurm.jobs import jobs_path, recorded_elsewhere

    for named in (None, "", str(run), str(tmp_path / "elsewhere")):
        data = json.loads(jobs_path(run).read_text()) | {"run_dir": named}
        jobs_path(run).write_text(json.dumps(data))
        found = recorded_elsewhere(run)
        assert found == ((named, ["21070"]) if named and named != str(run) else None), named
    # recorded 1 s after the job started: it runs
    jobs = run / "slurm" / "jobs.json"
    later = jobs.read_text().replace('"21070"', '"2107"')
    timer = threading.Timer(1.0, jobs.write_text, (later,))
    t0 = time.monotonic()
    timer.start()
    res = _recorded(run, "2107", "20")
    timer.join()
    assert res.returncode == 0 and 0.9 < time.monotonic() - t0 < 15, res.stdout
