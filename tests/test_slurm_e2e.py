"""`gprpipe run --executor slurm --wait` on a real single-node cluster, as a user runs it.

Needs a running cluster (scripts/local-slurm.sh start). Skips without one, except in CI
(CI=true), where a missing cluster fails.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import require_slurm, run_cli_here

REPO = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.slurm, pytest.mark.slow]


@pytest.fixture(autouse=True)
def _cluster() -> None:
    require_slurm()


def gprpipe(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "gprpipe", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=900,
    )


def test_quickstart_on_slurm_matches_local(
    shared_quickstart: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    qs = "user_configs/quickstart.toml"
    # PNG only, as the local run it is compared with (the formats change no number)
    out = ("--set", f"base.output={tmp_path / 'slurm'}", "--set", 'plot.formats=["png"]')
    res = gprpipe("run", qs, "--executor", "slurm", "--wait", *out)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "job arrays" in res.stdout
    a = (shared_quickstart / "nominal" / "scan.csv").read_bytes()  # the local run
    b = (tmp_path / "slurm" / "nominal" / "scan.csv").read_bytes()
    assert a == b
    scripts = sorted((tmp_path / "slurm" / "slurm").glob("*.sbatch"))
    assert any("#SBATCH --array=0-" in s.read_text() for s in scripts)
    jobs = json.loads((tmp_path / "slurm" / "slurm" / "jobs.json").read_text())
    assert jobs
    code, status, _ = run_cli_here("status", tmp_path / "slurm")
    assert code == 0 and "done=6" in status

    # a job that left SLURM without its done marker (killed after its outputs): `summary`
    # read the markers alone and counted the task running for ever, while `status` said
    # failed (a review); both ask the executor now
    from gprpipe.executors import slurm
    from gprpipe.executors.slurm import scheduler
    from gprpipe.pipeline.state import clear_state, write_state

    # --wait returns on the markers; SLURM may list the last element as COMPLETING (its
    # epilogue) for moments after: a job still listed is rightly "running"
    ids = slurm.job_ids(tmp_path / "slurm")
    deadline = time.monotonic() + 60
    slurm_run = tmp_path / "slurm"
    while any(
        v.state in scheduler.ACTIVE for v in (scheduler.queue(ids, slurm_run) or {}).values()
    ):
        assert time.monotonic() < deadline, scheduler.queue(ids, slurm_run)
        time.sleep(0.2)
    point = tmp_path / "slurm" / "nominal"
    done = (point / ".state" / "plot.done").read_bytes()
    clear_state(point, "plot")
    with monkeypatch.context() as job:  # the job's own marker: it names its SLURM job
        job.setenv("SLURM_JOB_ID", "7")
        write_state(point, "plot", "running")
    running = point / ".state" / "plot.running"
    in_job = running.read_text()
    ended = subprocess.run(["sh", "-c", "echo $$"], capture_output=True, text=True).stdout
    info = json.loads(in_job) | {"pid": int(ended)}  # (its process ended with its job)
    running.write_text(json.dumps(info))
    monkeypatch.setattr(slurm, "MARKER_GRACE", 0.0)  # (the job ended seconds ago)
    _, summary, _ = run_cli_here("summary", tmp_path / "slurm")
    assert "running" not in summary, summary
    assert "nominal/plot" in summary and "without a done/failed marker" in summary, summary
    # ... but a live process of this host in a SLURM job of its own (a shell of salloc, or
    # a task that outlived its job) runs it: it was judged lost too (a review)
    clear_state(point, "plot")  # (the failed verdict the summary wrote)
    running.write_text(in_job)
    code, status, _ = run_cli_here("status", tmp_path / "slurm")
    assert code == 0 and "running=1" in status, status
    assert f"run by process {os.getpid()} of this host, SLURM_JOB_ID 7, while no element " in (
        " ".join(status.split())
    ), status
    clear_state(point, "plot")
    # the task run by hand (`gprpipe step`, a live process of this host outside SLURM;
    # here this test's): status rewrote its marker "failed ... without a done/failed
    # marker", and rerun --failed started a second writer (a review). It is running.
    write_state(point, "plot", "running")
    marker = (point / ".state" / "plot.running").read_bytes()
    code, status, _ = run_cli_here("status", tmp_path / "slurm")
    assert code == 0 and "running=1" in status and "without a done/failed" not in status, status
    assert f"run by process {os.getpid()} of this host, outside SLURM" in status, status
    assert (point / ".state" / "plot.running").read_bytes() == marker
    # nor does a run of the folder submit a second writer of it (the whole-diff review)
    res = gprpipe("run", qs, "--executor", "slurm", *out, "--set", "plot.masses=[0.045]")
    assert res.returncode == 1, res.stdout + res.stderr
    assert (
        f"{slurm_run}: task nominal/plot is run by process {os.getpid()} of this host, outside "
        "SLURM: wait for it to finish." in res.stderr
    ), res.stderr
    assert (point / ".state" / "plot.running").read_bytes() == marker
    clear_state(point, "plot")  # (and the failed verdict the summary wrote)
    (point / ".state" / "plot.done").write_bytes(done)

    # the same config again: every task is up to date, so nothing is submitted
    again = gprpipe("run", qs, "--executor", "slurm", *out)
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith(
        f"Nothing to do: all 6 tasks are up to date ({tmp_path / 'slurm'}).\n"
    )
    assert json.loads((tmp_path / "slurm" / "slurm" / "jobs.json").read_text()) == jobs
    # other plot settings: only the plot task is queued; the others stay as they are
    fit_mtime = (tmp_path / "slurm" / "nominal" / "fit.h5").stat().st_mtime_ns
    plot = gprpipe("run", qs, "--executor", "slurm", "--wait", *out, "--set", "plot.masses=[0.045]")
    assert plot.returncode == 0, plot.stderr
    assert plot.stdout.startswith(
        "Submitted 1 tasks to SLURM as job arrays (5 up to date, not submitted): "
    )
    assert (tmp_path / "slurm" / "nominal" / "fit.h5").stat().st_mtime_ns == fit_mtime
    assert "done=6" in run_cli_here("status", tmp_path / "slurm")[1]

    # a damaged output: said, as the local executor says it, and its task queued again
    # (held: queued, not started, until cancelled)
    (tmp_path / "slurm" / "nominal" / "plots" / "spectrum.png").unlink()
    held = "slurm.extra=['--begin=now+600']"
    again = gprpipe(
        "run", qs, "--executor", "slurm", *out, "--set", "plot.masses=[0.045]", "--set", held
    )
    assert again.returncode == 0, again.stderr
    assert (
        "notice: nominal/plot: plots/spectrum.png is missing; running the task again"
        in again.stderr
    )
    assert again.stdout.startswith("Submitted 1 tasks to SLURM as job arrays (5 up to date")
    assert gprpipe("cancel", str(tmp_path / "slurm")).returncode == 0


def test_failed_task_then_rerun_failed(tmp_path: Path) -> None:
    """One grid point's data file goes away after the submission (its jobs held for a few
    seconds): only its tasks fail; once the file is back, `rerun --failed` resubmits
    exactly those tasks and the run completes. (A file missing at submission is refused
    before anything is submitted.)"""
    missing = tmp_path / "later.root"
    shutil.copy(REPO / "gprpipe" / "data" / "demo_2015.root", missing)
    cfg = tmp_path / "two.toml"
    cfg.write_text(
        f'[base]\ntemplate = "{REPO / "user_configs" / "quickstart.toml"}"\n'
        f'output = "{tmp_path / "run"}"\n'
        "[scan]\nmasses = [0.045, 0.06]\n"
        '[steps]\nrun = ["load", "fit", "limit"]\n'
        '[slurm]\nextra = ["--begin=now+6"]\n'
        f'[grid]\n"datasets.demo.path" = ["{REPO / "gprpipe" / "data" / "demo_2015.root"}",'
        f' "{missing}"]\n'
    )
    res = gprpipe("run", str(cfg), "--executor", "slurm")
    assert res.returncode == 0 and "Submitted" in res.stdout, res.stdout + res.stderr
    missing.unlink()  # before the held jobs start
    deadline = time.monotonic() + 600
    while True:  # (polled in this process: a subprocess every 2 s costs a CPU s each)
        code, lines, err = run_cli_here("status", tmp_path / "run")
        assert code == 0, err
        if not re.search(r"\b(pending|running)=", lines.splitlines()[-1]):
            break
        assert time.monotonic() < deadline, lines
        time.sleep(2)
    assert gprpipe("status", str(tmp_path / "run")).stdout == lines
    assert "data file not found" in lines
    points = [p.name for p in (tmp_path / "run").iterdir() if p.is_dir() and p.name != "slurm"]
    assert len(points) == 2
    good = next(p for p in points if "demo_2015" in p)
    bad = next(p for p in points if p != good)
    assert (tmp_path / "run" / good / "scan.csv").exists()
    assert not (tmp_path / "run" / bad / "scan.csv").exists()
    # each failed task with its SLURM job (square brackets printed, not taken as markup)
    assert re.search(rf"^failed +{re.escape(bad)}/load \[job \d+_\d+\]: ", lines, re.M), lines
    # the tasks after it (SLURM ran them: afterany) name it, and what redoes it
    from gprpipe.pipeline.state import read_state

    fit = read_state(tmp_path / "run" / bad, "fit__demo-000")
    assert fit[0] == "failed" and fit[1].endswith(
        f"load.h5: its task {bad}/load failed; rerun --failed redoes it and what follows it"
    ), fit
    good_mtime = (tmp_path / "run" / good / "limit.h5").stat().st_mtime_ns

    shutil.copy(REPO / "gprpipe" / "data" / "demo_2015.root", missing)
    res = gprpipe("rerun", str(tmp_path / "run"), "--failed", "--wait")
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"{good}/" not in res.stdout.split("Rerunning", 1)[1].split("\n", 1)[0]
    assert (tmp_path / "run" / bad / "scan.csv").exists()
    assert (tmp_path / "run" / good / "limit.h5").stat().st_mtime_ns == good_mtime
    code, status, _ = run_cli_here("status", tmp_path / "run")
    assert code == 0 and "failed=" not in status


def test_submitted_tasks_lose_their_earlier_commit_until_they_run(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """A config change submitted to SLURM: the tasks it queues are not fresh until their
    jobs have run. A chunk job cancelled before it started left the earlier config's part
    committed, and the merge (which starts after its chunks however they ended) published
    it under the new config's name."""
    from gprpipe.config import point_config_from_file
    from gprpipe.pipeline.commit import read_commit
    from gprpipe.pipeline.plan import plan_point

    qs, out = "user_configs/quickstart.toml", f"base.output={tmp_path / 'run'}"
    steps = 'steps.run=["load","fit","limit"]'
    code, _, err = run_cli_here("run", qs, "--set", out, "--set", steps, "--set", "limit.alpha=0.1")
    assert code == 0, err
    point = tmp_path / "run" / "nominal"
    old_csv = (point / "scan.csv").read_text()
    held = "slurm.extra=['--begin=now+600']"  # queued, not started, until cancelled
    request.addfinalizer(lambda: gprpipe("cancel", str(tmp_path / "run")))  # if it fails
    res = gprpipe(
        "run",
        qs,
        "--executor",
        "slurm",
        "--set",
        out,
        "--set",
        steps,
        "--set",
        "limit.alpha=0.3",
        "--set",
        held,
    )
    assert res.returncode == 0 and "Submitted 2 tasks" in res.stdout, res.stdout + res.stderr
    cfg = point_config_from_file(point / "config.toml")
    tasks = {t.id: t for t in plan_point("nominal", point, cfg)}
    assert read_commit(tasks["nominal/limit/demo-000"]) is None  # not fresh until it runs
    assert read_commit(tasks["nominal/fit/demo-000"]) is not None  # up to date: not queued
    run = tmp_path / "run"
    # a rerun refused while its limit is queued changes nothing (it withdrew the fit's
    # commit records first, and recorded the rerun that never ran)
    res = gprpipe("rerun", str(run), "--masses", "60MeV")
    assert res.returncode == 1 and "is in use by SLURM job" in res.stderr, res.stderr
    assert "Rerunning" not in res.stdout
    assert read_commit(tasks["nominal/fit/demo-000"]) is not None
    assert "reruns" not in json.loads((run / "run.json").read_text())
    # nor does a run of another plan (the queued jobs are of tasks it does not have)
    other = ("--steps", "load", "--set", "datasets.demo.rebin=20")
    res = gprpipe("run", qs, "--executor", "slurm", "--set", out, "--set", steps, *other)
    assert res.returncode == 1 and "queued by an earlier run of the folder" in res.stderr
    # a copy of the folder does not own the original's jobs: its cancel leaves them
    copy = tmp_path / "copy"
    shutil.copytree(run, copy, symlinks=True)
    res = gprpipe("cancel", str(copy))
    assert res.returncode == 0 and "Cancelled SLURM jobs" not in res.stdout, res.stdout
    # nor when its jobs.json is made to say it is the copy's (moved with its paths
    # rewritten): SLURM says the jobs were submitted from the original folder
    record = json.loads((copy / "slurm" / "jobs.json").read_text())
    record["run_dir"] = str(copy)
    (copy / "slurm" / "jobs.json").write_text(json.dumps(record))
    res = gprpipe("cancel", str(copy))
    assert res.returncode == 0 and "Cancelled SLURM jobs" not in res.stdout, res.stdout
    from gprpipe.executors.slurm import scheduler
    from gprpipe.executors.slurm.jobs import job_ids

    queued = scheduler.queue(job_ids(run), run) or {}
    assert len(queued) == 2 and {v.state for v in queued.values()} <= scheduler.PENDING
    (copy / "slurm" / "jobs.json").write_text('{"submissions": 5}\n')  # damaged
    code, _, err = run_cli_here("status", copy)
    assert code == 1 and "Traceback" not in err
    assert err.strip() == (
        f"error: {copy / 'slurm' / 'jobs.json'} is not a record of SLURM submissions "
        "(edited or damaged)"
    )
    # a run_dir that is no path (a NUL byte): "internal error: ValueError" (a review)
    (copy / "slurm" / "jobs.json").write_text(json.dumps({**record, "run_dir": "/tmp/a\u0000b"}))
    for command in ("status", "cancel"):
        code, _, err = run_cli_here(command, copy)
        assert code == 1 and err.strip() == (
            f"error: {copy / 'slurm' / 'jobs.json'}: its run_dir is not a path (edited or "
            "damaged); remove the file once no job of this run is queued or running (squeue)"
        ), err
    res = gprpipe("cancel", str(tmp_path / "run"))
    assert res.returncode == 0, res.stderr
    res = gprpipe("step", "limit", "--point-dir", str(point), "--part", "merge")
    # its limit part, cancelled, is failed: the merge names it and what redoes it
    assert res.returncode == 1 and (
        "its task nominal/limit/demo-000 failed; rerun --failed redoes it and what follows it"
        in res.stderr
    ), res.stderr
    assert (point / "scan.csv").read_text() == old_csv  # nothing merged


def test_a_submission_slurm_refuses_changes_nothing(tmp_path: Path) -> None:
    """A partition that does not exist: sbatch refused the first script after every
    commit record and done marker of the finished run had been withdrawn (status then
    showed a failed load, and summary refused scan.csv); now nothing is submitted or
    changed, and the sentence names the [slurm] settings."""
    qs, out = "user_configs/quickstart.toml", f"base.output={tmp_path / 'run'}"
    code, _, err = run_cli_here("run", qs, "--set", out, "--steps", "load,fit")
    assert code == 0, err
    run = tmp_path / "run"
    state = run / "nominal" / ".state"

    def files() -> dict[str, bytes]:  # the run's own files (run.json, config, records)
        return {
            p.relative_to(run).as_posix(): p.read_bytes()
            for p in run.rglob("*")
            if p.is_file() and p.name != ".gprpipe.lock"
        }

    before = files()
    assert len([p for p in state.iterdir() if p.suffix in (".commit", ".done")]) == 6
    bad = ("--executor", "slurm", "--force", "--set", "slurm.partition=nope")
    other = ("--set", "fit.blind_nsigma=1.96")  # a config that never runs must not be recorded
    # sbatch warns first (2 nodes for one task), then refuses: its error is the reason
    warned = ("--set", "slurm.extra=['--nodes=2','--ntasks=1']")
    res = gprpipe("run", qs, "--set", out, "--steps", "load,fit", *bad, *other, *warned)
    assert res.returncode == 1, res.stdout
    assert re.search(
        r"error: sbatch refused the \[slurm\] settings: .*[Ii]nvalid partition.* "
        r"\(nothing was submitted; check slurm\.partition, slurm\.account, slurm\.qos, "
        r"slurm\.time, slurm\.memory, slurm\.cpus_per_task and slurm\.extra\)",
        res.stderr,
    ), res.stderr
    assert files() == before  # run.json, config.toml, scripts, markers, commit records
    # sbatch's reason, not the 'Try "sbatch --help" for more information' that follows it
    unknown = ("--set", "slurm.extra=['--nodez=1']")
    res = gprpipe("run", qs, "--set", out, "--steps", "load,fit", *bad[:3], *unknown)
    assert res.returncode == 1, res.stdout
    assert "error: sbatch refused the [slurm] settings: sbatch: unrecognized option " in (
        res.stderr
    ), res.stderr
    assert files() == before
    code, status, _ = run_cli_here("status", tmp_path / "run")
    assert code == 0 and status.rstrip().endswith("\ndone=3"), status


def held_load_run(tmp_path: Path) -> tuple[Path, dict]:
    """The quickstart's load task queued on SLURM, held for an hour: (run folder, its job
    as jobs.json records it)."""
    run = tmp_path / "run"
    qs = str(REPO / "user_configs" / "quickstart.toml")
    hold = ("--set", 'slurm.extra=["--begin=now+1hour"]', "--set", f"base.output={run}")
    code, out, err = run_cli_here("run", qs, "--executor", "slurm", "--steps", "load", *hold)
    assert code == 0, out + err
    (job,) = json.loads((run / "slurm" / "jobs.json").read_text())["submissions"][0]["jobs"]
    return run, job


def test_a_task_run_by_hand_beside_queued_jobs_or_in_an_allocation_is_refused(
    tmp_path: Path,
) -> None:
    """A review: ``gprpipe step`` run by hand while the run's jobs were queued (a SLURM
    run holds the lock only while it submits) ran beside them, and in any process with
    a SLURM job id (``srun``, a shell of ``salloc``) it skipped the check. Refused; a
    task of the run's job scripts (which say whose they are) is not."""
    from conftest import run_cli_subprocess

    run, job = held_load_run(tmp_path)
    point = run / "nominal"
    try:
        for env in ({}, {"SLURM_JOB_ID": "4242"}):  # by hand; in an allocation of its own
            code, _, err = run_cli_subprocess(
                "step", "load", "--point-dir", point, "--force", env=env
            )
            assert (code, err.strip()) == (
                1,
                f"error: {run} is in use by SLURM job {job['job_id']}_0 of its run: a task "
                "run by hand beside it would write the same outputs; wait for it, or cancel "
                f"the run's jobs with: gprpipe cancel {run}",
            ), env
        assert not (point / "load.h5").exists()
        script = next((run / "slurm").glob("*_load.sbatch")).read_text()
        assert f"export GPRPIPE_SLURM_RUN={run}\n" in script
        # a task of the run's jobs: its script names the folder; a job of an older
        # gprpipe, whose script names none, is one that jobs.json records (a review: such
        # jobs, queued before an upgrade, refused themselves)
        for own in (
            {"SLURM_JOB_ID": "4243", "GPRPIPE_SLURM_RUN": str(run)},
            {"SLURM_JOB_ID": "4244", "SLURM_ARRAY_JOB_ID": str(job["job_id"])},
        ):
            code, _, err = run_cli_subprocess(
                "step", "load", "--point-dir", point, "--force", env=own
            )
            assert code == 0 and (point / "load.h5").is_file(), err
        # a damaged jobs.json proves no job the run's (an allocation's shell ran so)
        (run / "slurm" / "jobs.json").write_text("{")
        code, _, err = run_cli_subprocess(
            "step", "load", "--point-dir", point, "--force", env={"SLURM_JOB_ID": "999999"}
        )
        assert code == 1 and "jobs.json is not valid JSON" in err, err
    finally:
        subprocess.run(["scancel", str(job["job_id"])], check=False)


def test_summary_says_which_tasks_slurm_does_not_answer_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With squeue down, status said so but summary counted the held task as "not run"
    and suggested a rerun, which refused for that very reason (a review)."""
    run, job = held_load_run(tmp_path)
    try:
        shim = tmp_path / "bin"
        shim.mkdir()
        (shim / "squeue").write_text("#!/bin/sh\necho 'squeue: error: timed out' >&2\nexit 1\n")
        (shim / "squeue").chmod(0o755)
        monkeypatch.setenv("PATH", f"{shim}{os.pathsep}{os.environ['PATH']}")
        code, out, err = run_cli_here("summary", run)
        assert code == 0, out + err
        assert (
            "  tasks SLURM does not answer for (squeue): 1 (their jobs may be pending, "
            "running or ended; run summary again when it answers)"
        ) in out, out
        assert "tasks not run" not in out and "To finish the run" not in out, out
    finally:
        subprocess.run(["scancel", str(job["job_id"])], check=False)


def test_summary_of_a_task_queued_again_after_it_failed_follows_slurm(tmp_path: Path) -> None:
    """A job queued again after its task failed (``scontrol requeue``, a preempted node):
    status said pending, summary took the failed marker as final and suggested
    ``rerun --failed``, which found no failed task (a review). Summary asks SLURM too."""
    from gprpipe.pipeline.state import write_state

    run, job = held_load_run(tmp_path)
    try:
        write_state(run / "nominal", "load", "failed", "the first attempt failed")
        code, status, _ = run_cli_here("status", run)
        assert "pending=1" in status, status
        code, out, err = run_cli_here("summary", run)
        assert code == 0, out + err
        assert "tasks queued in SLURM: 1" in out and "failed tasks" not in out, out
        assert "To finish the run" not in out, out
    finally:
        subprocess.run(["scancel", str(job["job_id"])], check=False)


def test_an_element_cancelled_before_it_started_fails_at_once(tmp_path: Path) -> None:
    """A job cancelled with scancel (not gprpipe cancel) before it started: status says
    so at once (it said "running" for 20 s, the grace a marker of a job that ran gets to
    appear on a shared file system, then blamed a kill, memory or the time limit)."""
    run, job = held_load_run(tmp_path)
    subprocess.run(["scancel", str(job["job_id"])], check=True)
    deadline = time.monotonic() + 10
    while True:  # scancel returns before the controller has cancelled it
        code, out, err = run_cli_here("status", run)
        assert code in (0, 1), out + err
        if ("running" not in out and "pending" not in out) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    why = (
        f"SLURM job {job['job_id']}_0 was cancelled before it started; it runs with: "
        f"gprpipe rerun {run} --failed"
    )
    assert why in out, out


def test_cancel_and_status_write_no_marker_through_a_state_folder_linked_out(
    tmp_path: Path,
) -> None:
    """A SLURM run whose point's ``.state`` is a link out of the run: ``cancel`` said it
    marked nothing there yet wrote ``failed`` markers through the link for the pending
    tasks (the executor got every task, not the ones it may mark), and ``status`` wrote
    its verdict on a job cancelled before it started there too (a review)."""
    run, outside = tmp_path / "run", tmp_path / "elsewhere"
    qs = str(REPO / "user_configs" / "quickstart.toml")
    hold = ("--set", 'slurm.extra=["--begin=now+1hour"]', "--set", f"base.output={run}")
    code, out, err = run_cli_here("run", qs, "--executor", "slurm", "--steps", "load,fit", *hold)
    assert code == 0, out + err
    (run / "nominal" / ".state").mkdir(exist_ok=True)  # (markers cleared at submission)
    shutil.move(run / "nominal" / ".state", outside)
    (run / "nominal" / ".state").symlink_to(outside)
    before = sorted(p.name for p in outside.iterdir())
    code, out, err = run_cli_here("cancel", run)
    assert code == 0, out + err
    assert "Marked nothing failed there:" in out and "the state folder resolves to" in out
    assert "Cancelled SLURM jobs:" in out
    code, status, err = run_cli_here("status", run)
    assert sorted(p.name for p in outside.iterdir()) == before, status + err
    assert "cancelled before it started" in status, status


def test_gprpipe_cancel_says_when_scancel_fails(tmp_path: Path, monkeypatch) -> None:
    """`gprpipe cancel` of a queued run whose scancel fails (the controller does not
    answer): it said "Cancelled SLURM jobs" and marked the tasks failed while SLURM still
    held them (a review); one sentence now, exit code 1, nothing marked."""
    import os

    run, job = held_load_run(tmp_path)
    shim = tmp_path / "bin"
    shim.mkdir()
    (shim / "scancel").write_text("#!/bin/sh\necho 'scancel: error: no controller' >&2\nexit 1\n")
    (shim / "scancel").chmod(0o755)
    try:
        with monkeypatch.context() as m:
            m.setenv("PATH", f"{shim}:{os.environ['PATH']}")
            code, out, err = run_cli_here("cancel", run)
        assert (code, out) == (1, ""), out
        assert err.strip() == (
            f"error: scancel {job['job_id']} failed: scancel: error: no controller; the jobs "
            "may still be queued (squeue shows them)"
        )
        assert not list((run / "nominal" / ".state").glob("*.failed"))
    finally:
        assert run_cli_here("cancel", run)[0] == 0


@pytest.mark.podman
def test_a_cancelled_job_leaves_no_podman_container_and_commits_nothing(
    shared_data: Path, tmp_path: Path
) -> None:
    """SLURM + Podman: `gprpipe cancel` ended the job, but its container (no process of
    the job) kept computing and committed the fit, done marker included, 10-20 s later
    (a review; reproduced here). Now the job's SIGTERM trap removes the container at
    once, and the task is failed with SLURM named."""
    from conftest import require_podman

    from gprpipe.engines.base import RUN_LABEL, run_token
    from gprpipe.pipeline.state import read_state

    image = require_podman()
    run = tmp_path / "run"
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        f'[base]\ntemplate = "hps2015"\noutput = "{run}"\n'
        f'[datasets.2015]\npath = "{shared_data / "funcform_2015_toys.root"}"\n'
        'hist = "input_hist"\n'
        "[scan]\nmass_step = 0.0003\nchunk_size = 1000\n"  # one fit task of ~10 s
        '[steps]\nrun = ["load", "fit"]\n'
    )
    args = ("--engine", "podman", "--executor", "slurm", "--set", f"base.image={image}")
    res = gprpipe("run", str(cfg), *args)
    assert res.returncode == 0, res.stdout + res.stderr

    def containers(*status: str) -> list[str]:
        label = f"label={RUN_LABEL}={run_token(run)}"
        ps = ["podman", "ps", "-a", "--filter", label, "--format", "{{.Names}}"]
        ps += [f"--filter=status={s}" for s in status]
        out = subprocess.run(ps, capture_output=True, text=True, timeout=60).stdout
        return out.split()

    deadline = time.monotonic() + 300
    while not any("__fit__" in c for c in containers("running")):
        assert time.monotonic() < deadline, "the fit container never started"
        time.sleep(0.5)
    time.sleep(1)  # computing
    res = gprpipe("cancel", str(run))
    assert res.returncode == 0 and "Cancelled SLURM jobs" in res.stdout, res.stderr
    deadline = time.monotonic() + 15  # the trap's second removal is 2 s after the first
    while containers():
        assert time.monotonic() < deadline, containers()
        time.sleep(0.5)
    time.sleep(3)  # what a surviving container would have committed by now
    point = run / "nominal"
    state, message = read_state(point, "fit__2015-000")
    assert state == "failed" and message.startswith(
        "exit code 143 (signal 15) without a done/failed marker: SLURM stopped it"
    ), (state, message)
    assert not (point / ".state" / "fit__2015-000.commit").exists()
    assert not (point / ".state" / "fit__2015-000.done").exists()


@pytest.mark.podman
def test_cancel_removes_containers_its_jobs_left_on_this_host(tmp_path: Path, request) -> None:
    """A SLURM job killed without its TERM trap (SIGKILL, the OOM killer) left its Podman
    container running: `gprpipe cancel` cancelled the jobs, and the container committed
    its task afterwards (a review). Cancel removes the run's containers on this host
    (here one started by hand with the run's label, as a task's would be)."""
    from conftest import TEST_IMAGE, require_podman

    from gprpipe.engines.base import RUN_LABEL, run_token

    require_podman()
    run = tmp_path / "run"
    request.addfinalizer(lambda: gprpipe("cancel", str(run)))  # if it fails
    sets = [
        f"base.output={run}",
        f"base.image={TEST_IMAGE}",
        "base.check_image_version=false",
        'steps.run=["load"]',
        "slurm.extra=['--begin=now+600']",  # queued, not started
    ]
    args = [x for s in sets for x in ("--set", s)]
    res = gprpipe(
        "run", "user_configs/quickstart.toml", "--executor", "slurm", "--engine", "podman", *args
    )
    assert res.returncode == 0, res.stdout + res.stderr
    name = f"gprpipe-{run_token(run)}-by-hand"
    label = f"{RUN_LABEL}={run_token(run)}"
    started = subprocess.run(
        ["podman", "run", "-d", "--name", name, "--label", label, TEST_IMAGE, "sleep", "120"],
        capture_output=True,
        text=True,
    )
    request.addfinalizer(lambda: subprocess.run(["podman", "rm", "-f", name], capture_output=True))
    assert started.returncode == 0, started.stderr
    code, out, err = run_cli_here("cancel", run)
    assert code == 0, err
    assert f"Removed containers of its jobs: {name}" in out and "Cancelled SLURM jobs:" in out
    left = subprocess.run(
        ["podman", "ps", "-a", "--format", "{{.Names}}"], capture_output=True, text=True
    )
    assert name not in left.stdout.split()


def test_summary_of_queued_jobs_does_not_ask_for_a_rerun(tmp_path: Path, request) -> None:
    """Jobs still in SLURM's queue: summary counted them "tasks not run (pending or
    skipped)" and said to finish the run with `rerun --failed`, which then did nothing
    ("Nothing to rerun"; a review). It says they are queued, and asks for nothing."""
    run = tmp_path / "run"
    request.addfinalizer(lambda: gprpipe("cancel", str(run)))
    sets = [f"base.output={run}", 'steps.run=["load","fit"]', "slurm.extra=['--hold']"]
    args = [x for s in sets for x in ("--set", s)]
    res = gprpipe("run", "user_configs/quickstart.toml", "--executor", "slurm", *args)
    assert res.returncode == 0, res.stdout + res.stderr
    # held jobs never start: status says so (they kept --wait waiting with no reason given)
    code, out, err = run_cli_here("status", run)
    held = [line for line in out.splitlines() if "held (JobHeldUser)" in line]
    assert code == 0 and len(held) == 3 and "pending=3" in out, out + err
    assert held[0].startswith("pending  nominal/load [job ") and "scontrol release" in held[0]
    code, out, err = run_cli_here("summary", run)
    assert code == 0, err
    assert "  tasks queued in SLURM: 3 (gprpipe status follows them)" in out, out
    assert "tasks not run" not in out and "To finish the run" not in out
    code, out, err = run_cli_here("cancel", run)
    assert code == 0 and "Cancelled SLURM jobs:" in out, out + err
    code, out, err = run_cli_here("summary", run)
    assert "tasks queued in SLURM" not in out and "To finish the run" in out, out


def test_a_job_of_a_moved_run_folder_does_not_run_in_a_new_run_at_its_path(
    tmp_path: Path, request
) -> None:
    """A run folder moved (``mv``) while its job waited, and a new SLURM run made at the
    old path: the old job named that path, took the new run's folder for its own and ran
    its task there, replacing the new run's log and done marker (a review). It runs only
    where jobs.json records it: it ends without writing into the new run's point."""
    from gprpipe.executors.slurm import load_jobs
    from gprpipe.pipeline.commit import sha256_file

    old, moved = tmp_path / "run", tmp_path / "moved"
    request.addfinalizer(lambda: gprpipe("cancel", str(moved)))
    env = {**os.environ, "GPRPIPE_RECORD_WAIT": "3"}  # (reaches the job: sbatch exports it)

    def run(*sets: str) -> None:
        sets = (f"base.output={old}", 'steps.run=["load"]', *sets)
        args = ["--executor", "slurm", *(x for s in sets for x in ("--set", s))]
        res = subprocess.run(
            [sys.executable, "-m", "gprpipe", "run", "user_configs/quickstart.toml", *args],
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=600,
            env=env,
        )
        assert res.returncode == 0, res.stdout + res.stderr

    run("slurm.extra=['--hold']")
    (job,) = [j["job_id"] for s in load_jobs(old)["submissions"] for j in s["jobs"]]
    old.rename(moved)
    # status and cancel of the moved folder leave the job alone: they say whose it is
    for cmd in ("status", "cancel"):
        code, out, err = run_cli_here(cmd, moved)
        assert code == 0 and " ".join(err.split()).startswith(
            f"notice: {moved}/slurm/jobs.json records the SLURM jobs of {old} (this folder "
            "was copied or moved from there): they run there or not at all, never here, and "
            "status and cancel of this folder leave them alone (once that run is gone, cancel "
            f"any still queued with: scancel {job})."
        ), (cmd, out, err)
    run()  # the new run, at the old path (without --wait: its load ends in seconds)
    point = old / "nominal"
    deadline = time.monotonic() + 120
    while not (point / ".state" / "load.done").is_file() and time.monotonic() < deadline:
        time.sleep(0.5)
    time.sleep(1)  # (its job ends after the marker)
    logs = old / "slurm" / "logs"

    def files() -> dict[Path, str]:  # the new run's point and SLURM logs
        found = [*point.rglob("*"), *logs.glob("*")]
        return {p: sha256_file(p) for p in found if p.is_file()}

    before = files()
    assert point / ".state" / "load.done" in before and point / "logs" / "load.log" in before
    subprocess.run(["scontrol", "release", job], check=True, timeout=30)
    while time.monotonic() < deadline:
        if not subprocess.run(["squeue", "-h", "-j", job], capture_output=True, text=True).stdout:
            break
        time.sleep(1)
    else:
        pytest.fail(f"job {job} still queued")
    after = files()
    assert {p: after[p] for p in before} == before and len(after) == len(before) + 1
    # SLURM opens the job's log before the script runs: at a name with its job id, no
    # file of the new run's (it truncated the new run's 01_load log, a review)
    said = " ".join((logs / f"01_load_{job}_0.out").read_text().split())
    assert (
        f"gprpipe: job {job} is not recorded in {old}/slurm/jobs.json (the run folder was "
        "moved, or made anew by another run, since the job was submitted); the task does not run"
    ) in said, said
