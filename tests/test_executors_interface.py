"""The executor interface and registry, and the SLURM task bash executed for real.

The bash of every job script (``gprpipe/executors/slurm/task.sh`` with the failed-marker
lines of :mod:`gprpipe.pipeline.state`) runs here in bash: a command that dies without
a marker leaves a ``failed`` marker that :func:`read_state` and :func:`read_marker` read
back (one marker format, written by Python and by bash alike); a command that wrote its
own marker keeps it.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

import pytest

from gprpipe.config.schema import Config
from gprpipe.engines import get_engine
from gprpipe.errors import GprpipeError
from gprpipe.executors.base import EXECUTORS
from gprpipe.executors.local import LocalExecutor
from gprpipe.executors.registry import executor_class, get_executor
from gprpipe.executors.slurm import SlurmExecutor
from gprpipe.executors.slurm.render import run_function
from gprpipe.pipeline.state import (
    read_marker,
    read_state,
    state_dir,
    write_progress,
    write_state,
)


def run_task_bash(tmp_path: Path, command: str, env: dict[str, str] | None = None):
    point = tmp_path / "point"
    stem = state_dir(point) / "fit__demo-000"
    log = point / "logs" / "fit__demo-000.log"
    script = (
        run_function() + "\n" + f"task {shlex.quote(str(log))} "
        f"{shlex.quote(str(stem))} {command}\nexit $?\n"
    )
    res = subprocess.run(
        ["bash", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        env={
            "PATH": "/usr/bin:/bin",
            "SLURM_JOB_ID": "77",
            "SLURM_ARRAY_JOB_ID": "77",
            "SLURM_ARRAY_TASK_ID": "0",
            **(env or {}),
        },
    )
    return res, point, log


def start_job_bash(script: str, env: dict[str, str]) -> subprocess.Popen[str]:
    """``script`` in bash in a session of its own: SLURM signals every process of a job,
    the test its process group."""
    return subprocess.Popen(
        ["bash", "-c", script],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env={"PATH": "/usr/bin:/bin", **env},
    )


def test_registry_names_and_settings():
    assert {"local", "slurm"} <= set(EXECUTORS)
    assert executor_class(" SLURM ") is SlurmExecutor
    with pytest.raises(GprpipeError, match="unknown executor 'pbs': choose one of local, slurm"):
        executor_class("pbs")
    cfg = Config.model_validate(
        {"base": {"jobs": 3}, "slurm": {"time": "00:10:00", "max_parallel": 4}}
    )
    eng = get_engine("local")
    local = get_executor("local", Path("/tmp/r"), eng, cfg)
    assert isinstance(local, LocalExecutor) and local.jobs == 3 and local.blocking
    assert get_executor("local", Path("/tmp/r"), eng, cfg, jobs=1).jobs == 1
    slurm = get_executor("slurm", Path("/tmp/r"), eng, cfg)
    assert isinstance(slurm, SlurmExecutor) and not slurm.blocking
    assert slurm.options.time == "00:10:00" and slurm.options.max_parallel == 4
    assert not slurm.owns_containers and local.owns_containers


def test_task_bash_writes_the_failed_marker_of_the_state_module(tmp_path: Path):
    res, point, log = run_task_bash(tmp_path, "bash -c 'echo \"half \\\\ done\"; kill -9 $$'")
    assert res.returncode == 137
    state, message = read_state(point, "fit__demo-000")
    assert state == "failed"
    # the last log line, without its backslash (quotes and backslashes are dropped)
    assert message == "exit code 137 (signal 9) without a done/failed marker: half  done"
    info = read_marker(point, "fit__demo-000", "failed")
    assert info["slurm_job"] == "77" and info["state"] == "failed" and info["time"] > 0
    assert log.read_text() == "half \\ done\n"
    assert "gprpipe: 77_0 on" in res.stdout


def test_task_bash_removes_the_progress_record_of_a_killed_task(tmp_path: Path):
    """A task killed mid-way left its ``.progress`` beside the failed marker."""
    point = tmp_path / "point"
    write_state(point, "fit__demo-000", "running")
    write_progress(point, "fit__demo-000", 3, 10, "masses", 0.0)
    res, _, _ = run_task_bash(tmp_path, "bash -c 'kill -9 $$'")
    assert res.returncode == 137
    assert read_state(point, "fit__demo-000")[0] == "failed"
    assert sorted(p.name for p in state_dir(point).iterdir()) == ["fit__demo-000.failed"]


def test_task_bash_with_an_empty_last_log_line_leaves_no_dangling_colon(tmp_path: Path):
    """It said "... without a done/failed marker: " when the log ended in a blank line."""
    res, point, _ = run_task_bash(tmp_path, "bash -c 'echo; kill -9 $$'")
    assert res.returncode == 137
    assert read_state(point, "fit__demo-000") == (
        "failed",
        "exit code 137 (signal 9) without a done/failed marker",
    )
    # SIGTERM is SLURM's (a time limit or scancel): the task log says nothing of it, the
    # marker points at SLURM's log ($slurm_log in a job script; here there is none)
    res, point, _ = run_task_bash(tmp_path / "b", "bash -c 'echo working; kill -15 $$'")
    assert res.returncode == 143
    assert read_state(point, "fit__demo-000") == (
        "failed",
        "exit code 143 (signal 15) without a done/failed marker: SLURM stopped it (a time "
        "limit or scancel; its log says which)",
    )
    # a run folder may hold a quote (base.output): the marker stays valid JSON
    run = tmp_path / 'a"b\\c'
    (run / "slurm" / "logs").mkdir(parents=True)
    odd = {"slurm_log": str(run / "slurm" / "logs" / "01_fit_0.out")}
    res, point, _ = run_task_bash(run, "bash -c 'kill -15 $$'", env=odd)
    clean = str(run).replace('"', "").replace("\\", "")
    assert read_state(point, "fit__demo-000")[1].endswith(
        f"(a time limit or scancel; {clean}/slurm/logs/01_fit_0.out says which)"
    )


def test_task_bash_never_starts_a_task_after_slurm_sigterm(tmp_path: Path):
    """SLURM's SIGTERM (scancel, a time limit) before the task command started: the trap
    only printed, and the task started, ran and committed its outputs after the cancel (a
    review: a limit task done 10 s after `gprpipe cancel`). It never starts now, and its
    marker says so."""
    res, _, _ = run_task_bash(tmp_path, f"touch {shlex.quote(str(tmp_path / 'started'))}")
    assert res.returncode == 0 and (tmp_path / "started").exists()  # the task as such
    (tmp_path / "started").unlink()
    point = tmp_path / "p"
    slurm_logs = tmp_path / "slurm" / "logs"
    slurm_logs.mkdir(parents=True)
    stem = state_dir(point) / "fit__demo-000"
    script = (
        run_function()
        + f"\nkill -TERM $$\ntask {shlex.quote(str(point / 'logs' / 'x.log'))} "
        + shlex.quote(str(stem))
        + f" touch {shlex.quote(str(tmp_path / 'started'))}\nexit $?\n"
    )
    res = subprocess.run(
        ["bash", "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "slurm_log": str(slurm_logs / "01_fit_0.out")},
    )
    assert res.returncode == 143, res.stderr
    assert not (tmp_path / "started").exists()
    assert "gprpipe: SIGTERM from SLURM (time limit or scancel)" in res.stdout
    assert read_state(point, "fit__demo-000") == (
        "failed",
        "SLURM stopped it before it started (a time limit or scancel; "
        f"{slurm_logs}/01_fit_0.out says which)",
    )


def test_task_bash_refuses_a_log_or_state_folder_linked_out_after_submission(tmp_path: Path):
    """A link planted in place of the point's logs/ (or .state/) folder while the job
    waited in the queue: the task bash wrote its log through it, replacing a file outside
    the run (a review). The job's bash checks again and runs nothing."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "fit__demo-000.log").write_text("theirs")
    for folder in ("logs", ".state"):
        base = tmp_path / folder.strip(".")
        point = base / "point"
        point.mkdir(parents=True)
        (point / folder).symlink_to(outside)
        res, point, _ = run_task_bash(base, f"touch {shlex.quote(str(tmp_path / 'ran'))}")
        assert res.returncode == 1
        assert res.stdout.strip() == (
            f"gprpipe: {point / folder} is a link out of its point folder; the task does not run"
        )
        assert not (tmp_path / "ran").exists()
        assert sorted(p.name for p in outside.iterdir()) == ["fit__demo-000.log"]
        assert (outside / "fit__demo-000.log").read_text() == "theirs"


def test_task_bash_writes_no_marker_through_a_link_put_in_place_while_the_task_ran(
    tmp_path: Path,
):
    """The job's bash checked the point's folders only before the task: a .state folder
    swapped for a link while the task ran (for hours, perhaps) got the failed marker
    written, and the running and progress markers removed, outside the run (a review).
    Checked again before the marker now; nothing is written or removed there."""
    outside = tmp_path / "outside"
    outside.mkdir()
    for name in ("fit__demo-000.running", "fit__demo-000.progress"):
        (outside / name).write_text("theirs")
    state = tmp_path / "point" / ".state"
    swap = shlex.quote(f"mv {state} {state}.moved && ln -s {outside} {state} && echo ran && exit 3")
    res, _, log = run_task_bash(tmp_path, f"bash -c {swap}")
    assert res.returncode == 3, res.stderr
    assert res.stdout.strip().splitlines()[-1] == (
        f"gprpipe: {state} is a link out of its point folder; no failed marker is written"
    )
    assert sorted(p.name for p in outside.iterdir()) == [
        "fit__demo-000.progress",
        "fit__demo-000.running",
    ]
    assert log.read_text() == "ran\n"  # the task's log, made anew, holds its output


def test_task_bash_runs_nothing_when_its_log_cannot_be_made_and_says_so(tmp_path: Path):
    """A folder at the task log's name (the log is made anew): the task does not run, and
    its failed marker says why, not "exit code 1 without a done/failed marker" (a review).
    A task that exits 71 itself is not taken for that (the first fix read it from the exit
    code, a review). A FIFO or a link put at the log's name is replaced by the new log,
    not opened (noclobber let a link to a FIFO through, and its open hung). A point folder
    removed while the task ran is said gone, not a link."""
    point = tmp_path / "point"
    log = point / "logs" / "fit__demo-000.log"
    log.mkdir(parents=True)
    res, _, _ = run_task_bash(tmp_path, f"touch {shlex.quote(str(tmp_path / 'ran'))}")
    assert res.returncode == 1 and not (tmp_path / "ran").exists()
    said = f"{log} could not be made anew (something is at its name)"
    assert f"gprpipe: {said}; the task does not run" in res.stdout
    assert read_state(point, "fit__demo-000") == ("failed", f"{said}; the task did not run")
    log.rmdir()
    (state_dir(point) / "fit__demo-000.failed").unlink()  # (as a submission clears it)
    res, _, _ = run_task_bash(tmp_path, "bash -c 'echo real output; exit 71'")
    assert res.returncode == 71
    assert read_state(point, "fit__demo-000") == (
        "failed",
        "exit code 71 without a done/failed marker: real output",
    )
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    script = (
        run_function()
        + f"\ncd {shlex.quote(str(tmp_path))}\nln -s fifo link\nmkfifo named\n"
        + "for name in link named; do\n"
        + '    new_log "$name" && echo "to $name" >&"$log_fd" && exec {log_fd}>&-\n'
        + "done\n"
    )
    res = subprocess.run(
        ["bash", "-c", script],
        capture_output=True,
        text=True,
        timeout=20,
        env={"PATH": "/usr/bin:/bin", "SLURM_JOB_ID": "77"},
    )
    assert res.returncode == 0, res.stderr
    for name in ("link", "named"):
        assert not (tmp_path / name).is_symlink() and (tmp_path / name).is_file()
        assert (tmp_path / name).read_text() == f"to {name}\n"
    gone = shlex.quote(f"rm -rf {point} && exit 3")
    res, _, _ = run_task_bash(tmp_path, f"bash -c {gone}")
    assert res.returncode == 3
    assert res.stdout.strip().splitlines()[-1] == (
        f"gprpipe: {point / '.state'} is gone; no failed marker is written"
    )
    assert not point.exists()


def test_markers_and_slurm_logs_are_never_written_through_a_link_out_of_the_run(
    tmp_path: Path,
):
    """A link put in place of a point's .state folder after the run checked it: the
    executor's own markers (running, failed, cancelled) went through it, and SLURM's own
    job log (RUN/slurm/logs) held the task's output outside the run (a review). A marker
    is refused in one sentence; the job's bash runs nothing when SLURM's log folder leads
    out of the run."""
    from gprpipe.errors import GprpipeError

    outside = tmp_path / "outside"
    outside.mkdir()
    point = tmp_path / "run" / "point"
    point.mkdir(parents=True)
    (point / ".state").symlink_to(outside)
    with pytest.raises(GprpipeError) as info:
        write_state(point, "fit__demo-000", "failed", "x")
    assert str(info.value) == (
        f"{point / '.state'}: its folder resolves to {outside}, outside the run directory "
        f"{tmp_path / 'run'} (a link put in place of a folder of the run); nothing was "
        "written there."
    )
    assert list(outside.iterdir()) == []
    # the point folder itself swapped for a link before its logs/ folder was made: the
    # check looked only at an existing logs/ and the log was written outside (a review)
    from gprpipe.executors.slurm.reconcile import _inside
    from gprpipe.pipeline.state import within

    swapped = tmp_path / "run" / "swapped"
    swapped.symlink_to(outside)
    with pytest.raises(GprpipeError, match="outside the run directory"):
        within(swapped / "logs")
    assert list(outside.iterdir()) == []
    # status reads no log from outside the run into its message (a refused SLURM task)
    (outside / "load.log").write_text("secret\n")
    assert not _inside(swapped / "load.log", tmp_path / "run")
    (outside / "load.log").unlink()
    assert _inside(point.parent / "x.log", tmp_path / "run")
    base = tmp_path / "s"
    (base / "slurm").mkdir(parents=True)
    (base / "slurm" / "logs").symlink_to(outside)
    res, _, _ = run_task_bash(
        base,
        f"touch {shlex.quote(str(tmp_path / 'ran'))}",
        env={"slurm_log": str(base / "slurm" / "logs" / "01_fit_0.out")},
    )
    assert res.returncode == 1 and not (tmp_path / "ran").exists()
    assert res.stdout.strip() == (
        f"gprpipe: {base / 'slurm' / 'logs'} is a link out of the run directory; the task "
        "does not run"
    )
    assert list(outside.iterdir()) == []


def test_task_bash_keeps_the_task_own_marker(tmp_path: Path):
    point = tmp_path / "point"
    write_state(point, "fit__demo-000", "failed", "data file missing")
    res, _, _ = run_task_bash(tmp_path, "false")
    assert res.returncode == 1
    assert read_state(point, "fit__demo-000") == ("failed", "data file missing")
    res, _, _ = run_task_bash(tmp_path, "true")
    assert res.returncode == 0


def test_the_queued_executors_come_from_the_registry(shared_quickstart: Path, tmp_path: Path):
    """The run's busy check and the TUI's watcher asked "is it slurm?" by name; they ask
    the registry which executors queue their tasks (not ``blocking``)."""
    import json
    import shutil

    from gprpipe.executors.registry import queued_executors
    from gprpipe.pipeline.watch import RunWatcher

    assert queued_executors() == ["slurm"]
    assert [n for n, c in EXECUTORS.items() if c.blocking] == ["local"]
    run = tmp_path / "run"
    shutil.copytree(shared_quickstart, run, symlinks=True)
    view = RunWatcher().poll(run)
    assert view.started and view.executor == "local" and not view.queued
    info = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**info, "executor": "slurm"}))
    view = RunWatcher().poll(run)
    assert view.executor == "slurm" and view.queued and view.counts()["done"] == 6


def test_task_bash_removes_the_container_of_a_task_slurm_stopped(tmp_path: Path):
    """SLURM+podman: `gprpipe cancel` (or a time limit) stopped the `podman run` client but
    not its container, which is no process of the job; the task committed its outputs and
    a done marker 10-20 s after the cancel (a review; reproduced with SLURM here). The
    task is waited for in the background, so the SIGTERM trap runs at once and runs the
    job script's `stop` command (the engine's ``stop_command``); SLURM's log says SLURM
    stopped it. The "container" here is a process that ignores SIGTERM, which `stop` kills."""
    import os
    import signal
    import time

    point = tmp_path / "point"
    stem = state_dir(point) / "fit__demo-000"
    log = point / "logs" / "fit__demo-000.log"
    removed = tmp_path / "removed"
    tag = f"container-{os.getpid()}-{time.monotonic_ns()}"
    stop = f'echo "$1" >> {shlex.quote(str(removed))}; pkill -KILL -f ^{tag}'
    script = (
        run_function()
        + f"\nstop=(bash -c {shlex.quote(stop)} - 'gprpipe-x-a b'); "
        + f"task {shlex.quote(str(log))} {shlex.quote(str(stem))} "
        + f"bash -c 'trap \"\" TERM; echo started; exec -a {tag} sleep 60'\nexit $?\n"
    )
    proc = start_job_bash(script, {"SLURM_ARRAY_JOB_ID": "77", "SLURM_ARRAY_TASK_ID": "0"})
    deadline = time.monotonic() + 30
    while not (log.exists() and log.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    t0 = time.monotonic()
    os.killpg(proc.pid, signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    assert time.monotonic() - t0 < 20  # not the task's 60 s
    # (a second wait that found the status collected gave "exit code -1", the job 255)
    assert proc.returncode == 143
    assert "gprpipe: SIGTERM from SLURM (time limit or scancel)" in out
    # removed twice: a client stopped while creating the container leaves it starting
    assert removed.read_text() == "gprpipe-x-a b\ngprpipe-x-a b\n"
    state, message = read_state(point, "fit__demo-000")
    assert state == "failed" and message == (
        "exit code 143 (signal 15) without a done/failed marker: SLURM stopped it (a time "
        "limit or scancel; its log says which)"
    ), message
    # said in SLURM's log (the job's output), not appended to the task's log afterwards:
    # its name may stand for a link or a FIFO by then (a review)
    assert "gprpipe: SLURM stopped this task (a time limit or scancel; its log says which)" in out
    # without a container (local engine) there is nothing to remove
    res, _, _ = run_task_bash(tmp_path / "b", "true")
    assert res.returncode == 0 and removed.read_text().count("\n") == 2


def test_a_sigterm_during_the_task_bash_checks_is_no_link_alarm(tmp_path: Path):
    """SLURM's SIGTERM (to every process of the job) killed `realpath` during the link
    checks before the task: its empty answer read as "a link out of its point folder"
    (return 1, no marker), and bash (5.2) lost the trap of a SIGTERM during the first of
    two command substitutions in one command (a review: 46 and 40 of 300 cancels). Each
    check takes one substitution per command, again when the signal killed it; the task
    never starts and its marker says SLURM stopped it. `realpath` is slowed here (a
    shim on PATH) so that the signal lands during the checks."""
    import os
    import signal
    import time

    shim = tmp_path / "bin"
    shim.mkdir()
    real = subprocess.run(["bash", "-c", "command -v realpath"], capture_output=True, text=True)
    (shim / "realpath").write_text(f'#!/bin/bash\nsleep 0.5\nexec {real.stdout.strip()} "$@"\n')
    (shim / "realpath").chmod(0o755)
    point = tmp_path / "run" / "p"
    stem = state_dir(point) / "fit__demo-000"
    script = (
        run_function()
        + f"\ntask {shlex.quote(str(point / 'logs' / 'x.log'))} {shlex.quote(str(stem))} "
        + f"touch {shlex.quote(str(tmp_path / 'started'))}\nexit $?\n"
    )
    proc = start_job_bash(script, {"PATH": f"{shim}:/usr/bin:/bin"})
    time.sleep(0.2)  # in the first realpath of the checks
    os.killpg(proc.pid, signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert "is a link" not in out, out
    assert proc.returncode == 143, out
    assert not (tmp_path / "started").exists()
    assert read_state(point, "fit__demo-000") == (
        "failed",
        "SLURM stopped it before it started (a time limit or scancel; its log says which)",
    )


def test_rerun_of_a_mass_after_a_figures_only_run_says_how_to_go_on(
    shared_quickstart: Path, tmp_path: Path
):
    """After `run --steps plot` the run's plan holds the plot task alone: `rerun --masses`
    was refused with no way forward (a review)."""
    import shutil

    from conftest import QUICKSTART, run_cli_here, settings

    run = tmp_path / "run"
    shutil.copytree(shared_quickstart, run, symlinks=True)
    args = ("--steps", "plot", *settings(f"base.output={run}", 'plot.formats=["png"]'))
    code, out, err = run_cli_here("run", QUICKSTART, *args)
    assert code == 0, out + err
    code, out, err = run_cli_here("rerun", run, "--masses", "60MeV")
    assert code == 1 and out == ""
    assert err.strip() == (
        f"error: --masses: no task of {run} owns 0.06 GeV (60 MeV) (its last run planned "
        "only plot, and a rerun redoes tasks of the last run: run the config again with its "
        "fit and limit steps)."
    )


@pytest.mark.parametrize("code", [3, 143])
def test_the_job_bash_writes_no_file_through_a_link_put_in_the_run_folder(
    tmp_path: Path, code: int
) -> None:
    """A review: the job's bash wrote its failed marker's temporary file and, after SLURM's
    SIGTERM, a line of the task's log through whatever stood at those names when the task
    ended (hours after it removed them), and copied the last line of a linked 'log' into
    the marker: anyone who could write the run folder could make the job write to, or
    read, any file of the submitting user."""
    outside = tmp_path / "outside"
    outside.mkdir()
    target, secret = outside / "target.txt", outside / "secret.txt"
    target.write_text("untouched\n")
    secret.write_text("the last line of another file\n")
    stem = "point/.state/fit__demo-000"
    log = "point/logs/fit__demo-000.log"
    plant = (
        f"ln -s {target} {tmp_path / stem}.failed.tmp; "
        f"rm -f {tmp_path / log}; ln -s {secret if code == 3 else target} {tmp_path / log}; "
        f"exit {code}"
    )
    res, point, _ = run_task_bash(tmp_path, f"bash -c {shlex.quote(plant)}")
    assert res.returncode == code, res.stdout + res.stderr
    assert target.read_text() == "untouched\n"
    failed = tmp_path / f"{stem}.failed"
    assert failed.is_file() and not failed.is_symlink()
    message = read_state(point, "fit__demo-000")[1]
    assert message.startswith(f"exit code {code}") and "another file" not in message, message
    # a FIFO at the log's name: neither read nor written (the job hung on it until its
    # time limit)
    fifo = f"rm -f {tmp_path / log}; mkfifo {tmp_path / log}; exit {code}"
    res, point, _ = run_task_bash(tmp_path / "f", f"bash -c {shlex.quote(fifo)}")
    assert res.returncode == code
