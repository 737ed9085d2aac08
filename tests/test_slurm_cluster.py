"""SLURM executor end to end on a real cluster (``scripts/local-slurm.sh start``).

Skipped when ``sinfo`` does not answer, unless CI=true (then it fails: CI starts the
cluster). The tasks are tiny Python one-liners that behave like ``gprpipe step``: they
write their own running/done/failed markers and fail fast when an input is missing.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import require_slurm

from gprpipe.errors import GprpipeError
from gprpipe.executors import slurm
from gprpipe.executors.slurm import SlurmOptions, load_jobs, poll, poll_details, resubmit, submit
from gprpipe.pipeline.state import read_state
from gprpipe.pipeline.task import Task

pytestmark = pytest.mark.slurm
REPO = Path(__file__).resolve().parents[1]

# argv: POINT_DIR SLUG DEP_SLUG...; the file "fail-<slug>" makes it fail with a marker,
# "die-<slug>" die without one (like a task killed for memory), "sleep-<slug>" sleep
# (the seconds written in it, default 120)
STEP = """
import os, sys, pathlib, time
from gprpipe.pipeline.state import read_state, write_state
pd, slug, deps = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3:]
write_state(pd, slug, "running")
if (pd / f"sleep-{slug}").exists():
    print("sleeping", flush=True)
    time.sleep(float((pd / f"sleep-{slug}").read_text() or 120))
if (pd / f"die-{slug}").exists():
    print("dying without a marker", flush=True)
    os._exit(9)
missing = [d for d in deps if read_state(pd, d)[0] != "done"]
if (pd / f"fail-{slug}").exists() or missing:
    why = f"input {missing[0]} is missing" if missing else "bad histogram"
    write_state(pd, slug, "failed", why)
    print(why)
    sys.exit(1)
(pd / f"{slug}.out").write_text(str(os.environ.get("SLURM_ARRAY_JOB_ID")))
write_state(pd, slug, "done")
print("done")
"""


class PythonEngine:
    """Stand-in engine: runs ``python <task.argv>`` (the tasks are ``-c`` one-liners)."""

    def command(self, task: Task, *, run_dir: Path, env, check_paths: bool = True) -> list[str]:
        return [sys.executable, *task.argv]

    def stop_command(self, argv) -> None:  # no container to remove
        return None


@pytest.fixture(scope="module")
def cluster() -> None:
    require_slurm()


def step_task(point_dir: Path, step: str, part: str, deps: tuple[Task, ...] = ()) -> Task:
    """Task ``p0/STEP/PART`` running the test step (its marker slug ``STEP__PART``)."""
    tid = f"p0/{step}/{part}"
    slug = tid.split("/", 1)[1].replace("/", "__")
    argv = ("-c", STEP, str(point_dir), slug, *(d.slug for d in deps))
    return Task(
        id=tid,
        point="p0",
        step=step,
        point_dir=point_dir,
        argv=argv,
        part=part,
        deps=tuple(d.id for d in deps),
    )


def make_tasks(point_dir: Path) -> list[Task]:
    work = [step_task(point_dir, "work", f"c{k}") for k in range(3)]
    return [*work, step_task(point_dir, "work", "merge", tuple(work))]


def test_submit_wait_fail_resubmit(cluster, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(slurm, "MARKER_GRACE", 0.0)  # no shared file system here
    run = tmp_path / "run"
    point = run / "p0"
    point.mkdir(parents=True)
    tasks = make_tasks(point)
    c0, c1, c2, merge = tasks
    (point / f"fail-{c1.slug}").touch()
    (point / f"die-{c2.slug}").touch()
    opts = SlurmOptions(time="00:05:00", memory="200M", max_parallel=2)
    env = {"PYTHONPATH": str(REPO)}

    t0 = time.perf_counter()
    sub = submit(tasks, run_dir=run, engine=PythonEngine(), options=opts, env=env)
    latency = time.perf_counter() - t0
    assert [s.name for s in sub.scripts] == ["01_work", "02_work-merge"]
    first, second = sub.job_ids["01_work"], sub.job_ids["02_work-merge"]
    assert sub.dependencies == {"02_work-merge": f"afterany:{first}"}
    assert set(poll(run, tasks).values()) <= {"pending", "running"}
    assert poll_details(run, [merge])[merge.id].job == f"{second}_0"

    seen: list[dict] = []
    assert slurm.wait(run, tasks, progress=seen.append, interval=0.5) is False
    took = time.perf_counter() - t0
    details = poll_details(run, tasks)
    assert {t: s.state for t, s in details.items()} == {
        c0.id: "done",
        c1.id: "failed",
        c2.id: "failed",
        merge.id: "failed",
    }
    assert details[c1.id].message == "bad histogram"
    assert details[c1.id].job == f"{first}_1"
    # the sbatch script wrote the marker the dead task could not write
    assert details[c2.id].message == (
        "exit code 9 without a done/failed marker: dying without a marker"
    )
    # afterany: the merge ran after the failures and failed fast on its missing input
    assert details[merge.id].message == f"input {c1.slug} is missing"
    assert (point / f"{c0.slug}.out").read_text() == first
    assert c0.log.read_text().splitlines()[-1] == "done"
    assert (run / "slurm" / "logs" / f"01_work_{first}_0.out").exists()
    assert any(s in ("pending", "running") for s in seen[0].values())
    assert seen[-1] == poll(run, tasks)

    # fix the causes, resubmit exactly the failed tasks (and their dependent, the merge)
    (point / f"fail-{c1.slug}").unlink()
    (point / f"die-{c2.slug}").unlink()
    failed = [t for t, s in poll(run, tasks).items() if s == "failed"]
    assert failed == [c1.id, c2.id, merge.id]
    done_before = (point / ".state" / f"{c0.slug}.done").read_text()
    t1 = time.perf_counter()
    again = resubmit(
        [c1.id, c2.id], tasks=tasks, run_dir=run, engine=PythonEngine(), options=opts, env=env
    )
    assert [s.name for s in again.scripts] == ["03_work", "04_work-merge"]
    assert again.scripts[0].task_ids == (c1.id, c2.id)  # indices 0 and 1 of the new array
    assert "#SBATCH --array=0-1%2" in again.scripts[0].text
    third = again.job_ids["03_work"]
    assert again.dependencies == {"04_work-merge": f"afterany:{third}"}
    with pytest.raises(GprpipeError, match=r"still (pending|running) in SLURM"):
        resubmit([c1.id], tasks=tasks, run_dir=run, engine=PythonEngine(), options=opts, env=env)

    assert slurm.wait(run, tasks, interval=0.5) is True
    took_rerun = time.perf_counter() - t1
    assert poll(run, tasks) == dict.fromkeys([c0.id, c1.id, c2.id, merge.id], "done")
    assert poll_details(run, [c2])[c2.id].job == f"{third}_1"
    # the task that was done was not run again
    assert (point / ".state" / f"{c0.slug}.done").read_text() == done_before
    assert (point / f"{c0.slug}.out").read_text() == first
    assert (point / f"{c1.slug}.out").read_text() == third
    assert read_state(point, merge.slug)[0] == "done"
    subs = load_jobs(run)["submissions"]
    assert [s["kind"] for s in subs] == ["submit", "resubmit"]
    assert [j["job_id"] for s in subs for j in s["jobs"]] == [
        first,
        second,
        third,
        again.job_ids["04_work-merge"],
    ]
    print(
        f"\nsbatch of 2 scripts: {latency:.2f} s; 3-task array + merge (2 CPUs, "
        f"%2): {took:.1f} s; rerun of 2 tasks + merge: {took_rerun:.1f} s"
    )


def test_cancelled_tasks_are_failed(cluster, tmp_path: Path, monkeypatch) -> None:
    """scancel of a running task (as at a time limit) and of a task that never started."""
    monkeypatch.setattr(slurm, "MARKER_GRACE", 0.0)
    point = tmp_path / "run" / "p0"
    point.mkdir(parents=True)
    run = point.parent
    sleeper, held = (step_task(point, s, "x") for s in ("nap", "held"))
    (point / f"sleep-{sleeper.slug}").touch()
    env = {"PYTHONPATH": str(REPO)}
    first = submit(
        [sleeper], run_dir=run, engine=PythonEngine(), options=SlurmOptions(), env=env
    ).job_ids["01_nap"]
    second = submit(
        [held], run_dir=run, engine=PythonEngine(), options=SlurmOptions(extra=("--hold",)), env=env
    ).job_ids["02_held"]
    deadline = time.monotonic() + 60
    while poll(run, [sleeper])[sleeper.id] != "running" or not sleeper.log.exists():
        assert time.monotonic() < deadline, "the task did not start within 60 s"
        time.sleep(0.3)
    assert poll_details(run, [held])[held.id].slurm_state == "PENDING"
    time.sleep(1.0)  # let it write its running marker and print
    subprocess.run(["scancel", first, second], check=True)
    assert slurm.wait(run, [sleeper, held], interval=0.5) is False
    details = poll_details(run, [sleeper, held])
    assert details[sleeper.id].state == "failed"
    # its task log says only "sleeping": the message names SLURM's log, which says why
    # (the wrapper's marker, or the reconciled verdict when SLURM killed the wrapper too)
    slurm_log = run / "slurm" / "logs" / f"01_nap_{first}_0.out"
    assert details[sleeper.id].message in (
        "exit code 143 (signal 15) without a done/failed marker: SLURM stopped it (a time "
        f"limit or scancel; {slurm_log} says which)",
        f"SLURM job {first}_0 ended CANCELLED without a done/failed marker (killed, out of "
        f"memory or over its time limit?): sleeping; see {sleeper.log} and {slurm_log}",
    )
    assert "CANCELLED" in slurm_log.read_text()
    assert details[held.id].state == "failed"
    assert details[held.id].message == (
        f"SLURM job {second}_0 was cancelled before it started; it runs with: gprpipe rerun "
        f"{run} --failed"
    )
    # the verdict is kept in the markers, for readers that do not ask SLURM
    assert read_state(point, held.slug) == ("failed", details[held.id].message)


def test_dependency_on_a_task_queued_earlier(cluster, tmp_path: Path) -> None:
    """A submission whose tasks need a task still queued from an earlier one waits for it."""
    point = tmp_path / "run" / "p0"
    point.mkdir(parents=True)
    run = point.parent
    first = step_task(point, "a", "x")
    second = step_task(point, "b", "x", (first,))
    (point / "sleep-a__x").write_text("3")
    env = {"PYTHONPATH": str(REPO)}
    ja = submit(
        [first], run_dir=run, engine=PythonEngine(), options=SlurmOptions(), env=env
    ).job_ids["01_a"]
    sub = submit([second], run_dir=run, engine=PythonEngine(), options=SlurmOptions(), env=env)
    assert sub.dependencies == {"02_b": f"afterany:{ja}_0"}
    assert slurm.wait(run, [first, second], interval=0.5) is True
    assert slurm.job_ids_by_task(run) == {
        first.id: f"{ja}_0",
        second.id: f"{sub.job_ids['02_b']}_0",
    }


def test_an_element_cancelled_while_pending_says_so_without_accounting(
    cluster, tmp_path: Path, monkeypatch
) -> None:
    """An element of a pending array cancelled on its own leaves the queue at once; with no
    accounting (sacct answers nothing, as on this cluster) the verdict said "ended without
    a done/failed marker (killed, out of memory...?); see <a log that does not exist>".
    The task's own log left by an earlier attempt does not make this one "started" (it
    read as killed; a review)."""
    monkeypatch.setattr(slurm, "MARKER_GRACE", 0.0)
    point = tmp_path / "run" / "p0"
    point.mkdir(parents=True)
    run = point.parent
    first, second = (step_task(point, "held", part) for part in ("x", "y"))
    second.log.parent.mkdir(parents=True, exist_ok=True)
    second.log.write_text("an earlier attempt of this task\n")
    env = {"PYTHONPATH": str(REPO)}
    job = submit(
        [first, second],
        run_dir=run,
        engine=PythonEngine(),
        options=SlurmOptions(extra=("--hold",)),
        env=env,
    ).job_ids["01_held"]
    try:
        subprocess.run(["scancel", f"{job}_1"], check=True)
        deadline = time.monotonic() + 30
        while (details := poll_details(run, [first, second]))[second.id].state != "failed":
            assert time.monotonic() < deadline, details
            time.sleep(0.3)
        message = details[second.id].message
        if details[second.id].slurm_state is None:  # gone from the queue, no accounting
            assert message == (
                f"SLURM job {job}_1 left the queue (cancelled?) before it started; it runs "
                f"with: gprpipe rerun {run} --failed"
            )
        else:  # the queue still showed it, cancelled
            assert message == (
                f"SLURM job {job}_1 was cancelled before it started; it runs with: gprpipe "
                f"rerun {run} --failed"
            )
        assert details[first.id].state == "pending"
    finally:
        subprocess.run(["scancel", job], check=False)


@pytest.mark.parametrize("refused", ["a", "b"])
def test_a_refused_sbatch_blames_no_earlier_job_and_leaves_no_stale_done(
    cluster, tmp_path: Path, monkeypatch, refused: str
) -> None:
    """sbatch refusing the second of three chained scripts: its task took the element of its
    earlier submission (finished) and status blamed that job ("left the queue without a
    done/failed marker (killed, out of memory...?)"), and the third task, whose input the
    submitted job redoes, kept its earlier ``done`` (a review). Now both are pending."""
    monkeypatch.setattr(slurm, "MARKER_GRACE", 0.0)
    point = tmp_path / "run" / "p0"
    point.mkdir(parents=True)
    run = point.parent
    a = step_task(point, "a", "x")
    b = step_task(point, "b", "x", (a,))
    c = step_task(point, "c", "x", (b,))
    env = {"PYTHONPATH": str(REPO)}
    submit([a, b, c], run_dir=run, engine=PythonEngine(), options=SlurmOptions(), env=env)
    assert slurm.wait(run, [a, b, c], interval=0.5) is True
    shim = tmp_path / "bin"
    shim.mkdir()
    (shim / "sbatch").write_text(
        "#!/bin/sh\n"
        f'for last; do :; done\ncase "$last" in *_{refused}.sbatch)'
        ' echo "sbatch: error: refused" >&2; exit 1;; esac\n'
        f'exec {shutil.which("sbatch")} "$@"\n'
    )
    (shim / "sbatch").chmod(0o755)
    monkeypatch.setenv("PATH", f"{shim}:{os.environ['PATH']}")
    with pytest.raises(GprpipeError, match=rf"sbatch refused 0\d_{refused}\.sbatch: sbatch: "):
        submit([a, b, c], run_dir=run, engine=PythonEngine(), options=SlurmOptions(), env=env)
    assert slurm.wait(run, [a], interval=0.5) is (refused == "b")
    details = poll_details(run, [a, b, c])
    states = ["done", "pending", "pending"] if refused == "b" else ["pending"] * 3
    assert [details[t.id].state for t in (a, b, c)] == states
    assert details[b.id].message == details[c.id].message == ""
    assert read_state(point, b.slug)[0] == read_state(point, c.slug)[0] == "pending"


def one_task_run(
    tmp_path: Path, step: str, extra: tuple[str, ...] = ()
) -> tuple[Path, Path, Task, str]:
    """(run folder, point folder, task, job id) of one test task submitted with ``extra``
    sbatch options."""
    point = tmp_path / "run" / "p0"
    point.mkdir(parents=True)
    task = step_task(point, step, "x")
    sub = submit(
        [task],
        run_dir=point.parent,
        engine=PythonEngine(),
        options=SlurmOptions(extra=extra),
        env={"PYTHONPATH": str(REPO)},
    )
    return point.parent, point, task, sub.job_ids[f"01_{step}"]


@pytest.mark.parametrize("squeue_answers", [True, False])
def test_a_job_id_reused_by_someone_else_is_not_the_runs(
    cluster, tmp_path: Path, monkeypatch, squeue_answers: bool
) -> None:
    """A job id of a run's ``jobs.json`` that SLURM gave again to another user's job (its
    state wiped, its counter wrapped): ``cancel`` scancelled that job as the run's (a
    review), also when squeue did not answer (cancel then scancels every recorded id).
    Only jobs named by gprpipe are taken as the run's, and scancel spares any other."""
    run, _, task, ours = one_task_run(tmp_path, "a")
    assert slurm.wait(run, [task], interval=0.5) is True
    other = subprocess.run(
        ["sbatch", "--parsable", "--hold", "--wrap", "sleep 60"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    try:
        jobs_json = run / "slurm" / "jobs.json"
        jobs_json.write_text(jobs_json.read_text().replace(f'"{ours}"', f'"{other}"'))
        assert slurm.job_ids(run) == [other]
        if squeue_answers:
            assert slurm.cancel(run, [task]) == []
        else:
            shim = tmp_path / "bin"
            shim.mkdir()
            (shim / "squeue").write_text("#!/bin/sh\necho 'squeue: error: timeout' >&2\nexit 1\n")
            (shim / "squeue").chmod(0o755)
            with monkeypatch.context() as m:
                m.setenv("PATH", f"{shim}:{os.environ['PATH']}")
                assert slurm.cancel(run, [task]) == [other]  # (asked to cancel, by name)
        state = subprocess.run(
            ["squeue", "-h", "-j", other, "-o", "%T"], capture_output=True, text=True
        ).stdout.strip()
        assert state == "PENDING"
        assert poll_details(run, [task])[task.id].state == "done"
    finally:
        subprocess.run(["scancel", other], check=False)


def test_a_failed_scancel_is_said_and_marks_nothing(cluster, tmp_path: Path, monkeypatch) -> None:
    """scancel's exit code was ignored: cancel reported the jobs cancelled and marked their
    pending tasks failed while SLURM still held them (a review)."""
    run, point, task, job = one_task_run(tmp_path, "held", ("--hold",))
    shim = tmp_path / "bin"
    shim.mkdir()
    (shim / "scancel").write_text(
        "#!/bin/sh\necho 'scancel: error: Unable to contact slurm controller' >&2\nexit 1\n"
    )
    (shim / "scancel").chmod(0o755)
    try:
        with monkeypatch.context() as m:
            m.setenv("PATH", f"{shim}:{os.environ['PATH']}")
            with pytest.raises(GprpipeError) as info:
                slurm.cancel(run, [task])
        assert str(info.value) == (
            f"scancel {job} failed: scancel: error: Unable to contact slurm controller; the "
            "jobs may still be queued (squeue shows them)"
        )
        assert read_state(point, task.slug)[0] == "pending"
        assert poll_details(run, [task])[task.id].slurm_state == "PENDING"
    finally:
        subprocess.run(["scancel", job], check=False)


def test_status_says_when_squeue_does_not_answer(cluster, tmp_path: Path, monkeypatch) -> None:
    """squeue failing: status counted the submitted tasks "pending" from their markers, as
    if SLURM had said so, with no word (a review); each such task says SLURM did not
    answer, and status counts them in a note."""
    from gprpipe.executors.slurm.reconcile import UNANSWERED
    from gprpipe.pipeline.service import RunStatus

    run, _, task, job = one_task_run(tmp_path, "held", ("--hold",))
    shim = tmp_path / "bin"
    shim.mkdir()
    (shim / "squeue").write_text("#!/bin/sh\necho 'squeue: error: timeout' >&2\nexit 1\n")
    (shim / "squeue").chmod(0o755)
    try:
        # SLURM answers: queued, and held (sbatch --hold), which status shows (a review:
        # a held job kept --wait waiting with no reason given)
        assert poll_details(run, [task])[task.id].message == (
            f"queued in SLURM, held (JobHeldUser): it starts only once released (scontrol "
            f"release {job}) or cancelled"
        )
        with monkeypatch.context() as m:
            m.setenv("PATH", f"{shim}:{os.environ['PATH']}")
            polled = poll_details(run, [task])[task.id]
        assert (polled.state, polled.message) == ("pending", UNANSWERED)
        st = RunStatus(run, "slurm", [task], {task.id: ("pending", UNANSWERED)}, {})
        assert st.unanswered() == 1
    finally:
        subprocess.run(["scancel", job], check=False)


def test_a_wait_on_held_jobs_alone_ends_and_says_so(cluster, tmp_path: Path) -> None:
    """``--wait`` on jobs SLURM holds (sbatch --hold, an admin's hold) waited for ever:
    they never start by themselves. Once nothing of the run can start, every queued task
    held or waiting on a held job's array (a review of the first fix: the arrays after a
    held one wait with reason Dependency), the wait says so and ends; the jobs stay
    queued."""
    from gprpipe.errors import cli_command
    from gprpipe.executors.slurm import scheduler

    point = tmp_path / "run" / "p0"
    point.mkdir(parents=True)
    first = step_task(point, "a", "x")
    then = step_task(point, "b", "x", (first,))
    sub = submit(
        [first, then],
        run_dir=point.parent,
        engine=PythonEngine(),
        options=SlurmOptions(extra=("--hold",)),
        env={"PYTHONPATH": str(REPO)},
    )
    run, held, after = point.parent, sub.job_ids["01_a"], sub.job_ids["02_b"]
    try:
        subprocess.run(["scontrol", "release", after], check=True)  # held: the first alone
        deadline = time.monotonic() + 60
        while scheduler.pending_reasons([after]).get(f"{after}_0") != "Dependency":
            assert time.monotonic() < deadline, scheduler.pending_reasons([after])
            time.sleep(0.2)
        with pytest.raises(GprpipeError) as info:
            slurm.wait(run, [first, then], interval=0.2, held_check=0.0)
        assert str(info.value) == (
            f"SLURM holds jobs this run waits for (1 task, 1 after them waiting on them; "
            f"{first.id}: queued in SLURM, held (JobHeldUser): it starts only once released "
            f"(scontrol release {held}) or cancelled): nothing of it can start, so --wait "
            f"ends here and the jobs stay queued; release them (scontrol release {held}) and "
            f"follow the run with {cli_command('status', run)}, or remove them with "
            f"{cli_command('cancel', run)}"
        )
        assert poll_details(run, [first])[first.id].slurm_state == "PENDING"
        subprocess.run(["scontrol", "release", held], check=True)
        assert slurm.wait(run, [first, then], interval=0.2, held_check=0.0) is True
    finally:
        subprocess.run(["scancel", held, after], check=False)


def test_a_job_slurm_has_purged_is_cancelled_already(cluster) -> None:
    """A job that ended and left slurmctld between the queue's answer and scancel: scancel
    exits 1 with "Invalid job id specified", which cancel raised as a failure (a CI run:
    the TUI's cancel after a finished SLURM run). Nothing is left to cancel: no error; any
    other error still is one."""
    from gprpipe.executors.slurm import scheduler

    gone = "999999"  # never submitted here (the test cluster's ids are far below)
    assert subprocess.run(["squeue", "-h", "-j", gone], capture_output=True).returncode != 0
    scheduler.scancel([gone], {gone: "gprpipe-load"})


def test_cancel_stops_a_dependent_job_before_its_dependencies(
    cluster, tmp_path: Path, monkeypatch
) -> None:
    """scancel went oldest job first: a job waiting (afterany) for the jobs just cancelled
    could start on their freed CPUs before its own scancel, and status then called the
    run's never-needed merge "SLURM stopped it" instead of "cancelled before it started"
    (3 of 9 runs of the Ctrl-C test under load). A scancel that waits after each call makes
    that window certain: newest first, the dependent is cancelled while it still waits."""
    from gprpipe.executors.slurm import scheduler

    def sbatch(name: str, *dep: str) -> str:
        cmd = ["sbatch", "--parsable", "-J", name, "-o", str(tmp_path / f"{name}.out")]
        cmd += [f"--dependency=afterany:{dep[0]}"] if dep else []
        res = subprocess.run([*cmd, "--wrap", "sleep 60"], capture_output=True, text=True)
        return res.stdout.strip().split(";")[0]

    first = sbatch("gprpipe-first")
    second = sbatch("gprpipe-second", first)
    shim = tmp_path / "bin"
    shim.mkdir()
    (shim / "scancel").write_text(f'#!/bin/sh\n{shutil.which("scancel")} "$@"\nsleep 3\n')
    (shim / "scancel").chmod(0o755)
    try:
        deadline = time.monotonic() + 60
        while (
            "RUNNING"
            not in subprocess.run(
                ["squeue", "-h", "-j", first, "-o", "%T"], capture_output=True, text=True
            ).stdout
        ):
            assert time.monotonic() < deadline
            time.sleep(0.2)
        monkeypatch.setenv("PATH", f"{shim}:{os.environ['PATH']}")
        scheduler.scancel([first, second], {first: "gprpipe-first", second: "gprpipe-second"})
        out = subprocess.run(
            ["squeue", "-h", "-t", "all", "-j", second, "-o", "%T|%B"],
            capture_output=True,
            text=True,
        ).stdout.strip()
        assert out == "CANCELLED|n/a", out  # never started: no batch host
    finally:
        subprocess.run(["scancel", first, second], check=False)


def test_a_job_starting_during_cancel_is_not_called_cancelled_before_it_started(
    cluster, tmp_path: Path, monkeypatch
) -> None:
    """An element pending at cancel's squeue that starts before its scancel was marked
    "cancelled before it started" although it ran (a review). A scancel that first lets the
    held job start makes the race certain; the task then ends as a cancelled running one."""
    monkeypatch.setattr(slurm, "MARKER_GRACE", 0.0)
    run, point, task, job = one_task_run(tmp_path, "held", ("--hold",))
    (point / f"sleep-{task.slug}").touch()
    shim = tmp_path / "bin"
    shim.mkdir()
    (shim / "scancel").write_text(
        f"#!/bin/sh\nscontrol release {job}\n"
        f"until squeue -h -j {job} -o %T | grep -q RUNNING; do sleep 0.2; done\n"
        f"until [ -s {shlex.quote(str(task.log))} ]; do sleep 0.2; done\n"
        f'exec {shutil.which("scancel")} "$@"\n'
    )
    (shim / "scancel").chmod(0o755)
    try:
        with monkeypatch.context() as m:
            m.setenv("PATH", f"{shim}:{os.environ['PATH']}")
            assert slurm.cancel(run, [task]) == [job]
        assert slurm.wait(run, [task], interval=0.5) is False
        message = poll_details(run, [task])[task.id].message
        assert "before it started" not in message, message
        assert "SLURM stopped it" in message or "ended CANCELLED" in message, message
    finally:
        subprocess.run(["scancel", job], check=False)


def test_cancel_marks_every_pending_element_of_an_array_at_once(
    cluster, tmp_path: Path, monkeypatch
) -> None:
    """SLURM lists an array that never started as one record once it is cancelled: the
    check for elements that started during cancel took the others for started and left
    them pending (a review of the fix above)."""
    monkeypatch.setattr(slurm, "MARKER_GRACE", 0.0)
    point = tmp_path / "run" / "p0"
    point.mkdir(parents=True)
    tasks = [step_task(point, "held", part) for part in ("x", "y", "z")]
    env = {"PYTHONPATH": str(REPO)}
    job = submit(
        tasks,
        run_dir=point.parent,
        engine=PythonEngine(),
        options=SlurmOptions(extra=("--hold",)),
        env=env,
    ).job_ids["01_held"]
    try:
        assert slurm.cancel(point.parent, tasks) == [job]
        assert [read_state(point, t.slug) for t in tasks] == [
            ("failed", slurm.CANCELLED_PENDING)
        ] * 3
    finally:
        subprocess.run(["scancel", job], check=False)
