"""The run service (gprpipe.pipeline.service) that the CLI and the TUI both call: real
local runs of the shipped quickstart (demo spectrum, five masses) through ``service.run``,
then status, rerun and cancel through the same functions, and the TUI's background launch
(``python -m gprpipe.pipeline.launch SPEC``)."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import QUICKSTART, require_slurm, start_cli_subprocess

from gprpipe.errors import GprpipeError
from gprpipe.executors.base import Outcome
from gprpipe.pipeline import service
from gprpipe.pipeline.launch import LAUNCH_LOG, LAUNCH_SPEC, launch_rerun, launch_run
from gprpipe.pipeline.lock import is_locked
from gprpipe.pipeline.task import Task
from gprpipe.results.schema import SCAN, read_csv_table

STEPS = ["load", "fit", "limit"]  # no plot step: the service is under test, not the figures


class Recorder(service.RunObserver):
    """Every event the service reports, in order."""

    def __init__(self) -> None:
        self.events: list[tuple[str, object]] = []

    def started(self, tasks, executor: str) -> None:
        self.events.append(("started", (len(tasks), executor)))

    def task_ended(self, task: Task, outcome: Outcome) -> None:
        self.events.append(("ended", (task.id, outcome.state)))

    def rerunning(self, tasks) -> None:
        self.events.append(("rerunning", [t.id for t in tasks]))

    def stopped(self) -> None:
        self.events.append(("stopped", None))

    def of(self, kind: str) -> list[object]:
        return [v for k, v in self.events if k == kind]


def _options(run_dir: Path, **kw) -> service.RunOptions:
    return service.RunOptions(overrides=[f"base.output={run_dir}"], steps=STEPS, jobs=2, **kw)


def test_a_program_calling_the_service_keeps_its_sigterm_handler(tmp_path: Path):
    """A run takes SIGTERM over only while its tasks run (so that ``gprpipe cancel`` stops
    them) and gives the caller's handler back; a run in another thread of the program (where
    Python cannot set handlers) runs and leaves SIGTERM alone."""

    def mine(signum: int, frame: object) -> None:
        pass

    previous = signal.signal(signal.SIGTERM, mine)
    try:
        one = ["base.output={}", "scan.masses=[0.06]"]
        opts = service.RunOptions(overrides=[one[0].format(tmp_path / "a"), one[1]], steps=STEPS)
        assert service.run(QUICKSTART, opts).ok
        assert signal.getsignal(signal.SIGTERM) is mine
        result: list[object] = []
        opts = service.RunOptions(overrides=[one[0].format(tmp_path / "b"), one[1]], steps=STEPS)
        thread = threading.Thread(target=lambda: result.append(service.run(QUICKSTART, opts)))
        thread.start()
        thread.join(120)
        assert len(result) == 1 and result[0].ok  # type: ignore[attr-defined]
        assert (tmp_path / "b" / "nominal" / "scan.csv").is_file()
        assert signal.getsignal(signal.SIGTERM) is mine
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_cancel_stops_a_run_in_a_thread_of_this_process_and_only_it(tmp_path: Path):
    """A program runs the service in two threads and cancels one run from its main thread:
    no signal (it would go to the program itself); that run's fit is stopped and marked
    failed ("cancelled"), its thread gets Interrupted, the directory is let go; the other
    run, whose fit was running at the same moment, completes. Both fits are made slow
    (100 optimiser restarts, a few seconds) so that they surely run when one is cancelled."""
    slow = ["fit.n_restarts=100"]
    dirs = {k: tmp_path / k for k in ("a", "b")}
    outcome: dict[str, object] = {}

    def run(k: str) -> None:
        opts = _options(dirs[k])
        opts.overrides = [*opts.overrides, *slow]
        try:
            outcome[k] = service.run(QUICKSTART, opts)
        except service.Interrupted as exc:
            outcome[k] = exc

    threads = [threading.Thread(target=run, args=(k,)) for k in dirs]
    for t in threads:
        t.start()
    fit = "nominal/fit/demo-000"
    t0 = time.monotonic()
    fits: dict[str, str] = {}
    while time.monotonic() - t0 < 120 and set(fits.values()) != {"running"}:
        fits = {k: service.watch(d).states.get(fit, ("",))[0] for k, d in dirs.items()}
        time.sleep(0.05)
    assert fits == {"a": "running", "b": "running"}
    t1 = time.monotonic()
    done = service.cancel(dirs["a"])
    assert done.here and done.pids == [] and time.monotonic() - t1 < 10
    assert not is_locked(dirs["a"])  # cancel returned after the run let go of it
    for t in threads:
        t.join(120)
    assert isinstance(outcome["a"], service.Interrupted)
    assert "interrupted: 1 finished task kept in" in str(outcome["a"])
    states = service.status(dirs["a"]).states
    assert states["nominal/load"][0] == "done"
    assert states[fit][0] == "failed" and states[fit][1].startswith("cancelled")
    assert outcome["b"].ok  # type: ignore[attr-defined]
    assert service.status(dirs["b"]).counts() == {"done": 5}
    assert len(read_csv_table(dirs["b"] / "nominal" / "scan.csv")[1]) == 5


@pytest.mark.parametrize("executor", ["local", "slurm"])
def test_a_run_cancelled_while_it_is_planned_starts_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, executor: str
):
    """A cancel that comes while the run is still being planned (its stop event is set
    before any task starts): no task runs or is submitted, the thread gets Interrupted."""
    if executor == "slurm":
        require_slurm()
    real = service._stoppable

    @contextmanager
    def cancelled_at_once(run_dir: Path) -> Iterator[threading.Event]:
        with real(run_dir) as stop:
            stop.set()
            yield stop

    monkeypatch.setattr(service, "_stoppable", cancelled_at_once)
    run_dir = tmp_path / "run"
    with pytest.raises(service.Interrupted) as exc:
        service.run(QUICKSTART, _options(run_dir, executor=executor))
    said = {"local": "interrupted: 0 finished tasks kept in", "slurm": "nothing was submitted"}
    assert said[executor] in str(exc.value)
    assert service.status(run_dir).counts() == {"pending": 5}
    assert not (run_dir / "slurm").exists()  # no job script, hence no job


def test_cancel_refuses_a_lock_held_outside_the_service(tmp_path: Path):
    """A run directory this process holds other than through service.run (no stop event to
    set) is refused in one sentence instead of returning as if nothing ran."""
    from gprpipe.pipeline.lock import run_lock

    run_dir = tmp_path / "run"
    refused = pytest.raises(GprpipeError, match="outside the run service: it cannot be")
    with run_lock(run_dir, command="gprpipe run"), refused:
        service.cancel(run_dir)
    with run_lock(run_dir, command="gprpipe status"):  # a status call holds it briefly
        assert not service.cancel(run_dir).anything


def test_run_status_rerun_through_the_service(tmp_path: Path):
    run_dir = tmp_path / "run"
    rec = Recorder()
    result = service.run(QUICKSTART, _options(run_dir), rec)
    ids = [
        "nominal/load",
        "nominal/fit/demo-000",
        "nominal/fit/merge",
        "nominal/limit/demo-000",
        "nominal/limit/merge",
    ]
    assert result.ok and not result.queued and result.executor == "local"
    assert [t.id for t in result.tasks] == ids
    assert {o.state for o in result.report.outcomes.values()} == {"done"}
    assert rec.of("started") == [(5, "local")] and rec.of("stopped") == [None]
    assert sorted(tid for tid, _ in rec.of("ended")) == sorted(ids)  # type: ignore[misc]
    assert result.headline().startswith("5 tasks in ") and f"Results in {run_dir}" in (
        result.headline()
    )
    scan = run_dir / "nominal" / "scan.csv"
    columns, rows = read_csv_table(scan)
    assert tuple(columns) == SCAN.names
    assert [float(r["mass_GeV"]) for r in rows] == [0.03, 0.045, 0.06, 0.08, 0.1]
    assert all(float(r["eps2_up"]) > 0 and r["status"] == "ok" for r in rows)
    info = json.loads((run_dir / "run.json").read_text())
    assert info["executor"] == "local" and set(info["timings"]) == set(ids)

    st = service.status(run_dir)
    assert st.executor == "local" and st.counts() == {"done": 5} and not st.in_use
    lines = service.summarise(run_dir)
    assert lines[0] == f"Summary of {run_dir.resolve()}" and "  demo (5 masses)" in lines

    # unchanged: every task is cached, nothing starts
    again = service.run(QUICKSTART, _options(run_dir))
    assert again.ok and again.report.count("cached") == 5
    assert again.headline() == f"Nothing to do: all 5 tasks are up to date ({run_dir})."

    # rerun of one mass: its chunks and the merges after them, same numbers
    before = scan.read_bytes()
    rec = Recorder()
    redone = service.rerun(run_dir, masses="60MeV", observer=rec)
    assert redone is not None and redone.ok
    assert rec.of("rerunning") == [ids[1:]]
    assert redone.report.count("done") == 4 and scan.read_bytes() == before
    assert service.rerun(run_dir, failed=True) is None  # nothing failed
    with pytest.raises(GprpipeError, match="rerun needs --failed or --masses"):
        service.rerun(run_dir)
    with pytest.raises(GprpipeError, match=r"no task of .* owns 0.07 GeV"):
        service.rerun(run_dir, masses="70MeV")


def test_dry_run_and_refusals_write_nothing(tmp_path: Path):
    run_dir = tmp_path / "run"
    result = service.run(QUICKSTART, _options(run_dir, dry_run=True))
    assert result.preview is not None and result.preview.startswith(
        f"# 5 tasks, run directory {run_dir}"
    )
    assert "gprpipe step fit --point-dir" in result.preview
    with pytest.raises(GprpipeError, match=r"--points 'x\*' matches no grid point"):
        service.run(QUICKSTART, _options(run_dir, points="x*"))
    with pytest.raises(GprpipeError, match="blinding is lifted only by"):
        service.run(QUICKSTART, service.RunOptions(overrides=["base.blind=false"]))
    assert not run_dir.exists()
    with pytest.raises(GprpipeError, match="not a gprpipe run directory"):
        service.status(tmp_path)
    assert not service.cancel(tmp_path).anything  # nothing to stop


def _wait(launch, seconds: float = 300) -> int:
    t0 = time.monotonic()
    while launch.running and time.monotonic() - t0 < seconds:
        time.sleep(0.1)
    code = launch.returncode()
    assert code is not None, "the background run did not end"
    return code


def test_background_launch_cancel_and_rerun_failed(tmp_path: Path):
    """The TUI's launch: the service's own process runs service.run; cancel() finds it by
    the run directory's lock (no pid given), the task it stopped becomes failed
    ("cancelled"), rerun --failed in the background finishes the run. The fit is made
    slow (100 optimiser restarts, a few seconds) so that it is surely running when
    cancelled."""
    run_dir = tmp_path / "run"
    opts = _options(run_dir)
    opts.overrides = [*opts.overrides, "fit.n_restarts=100"]
    launch = launch_run(QUICKSTART, opts, run_dir)
    assert launch.argv == [
        sys.executable,
        "-m",
        "gprpipe.pipeline.launch",
        str(run_dir / LAUNCH_SPEC),
    ]
    spec = json.loads((run_dir / LAUNCH_SPEC).read_text())
    assert spec["kind"] == "run" and spec["options"]["steps"] == STEPS
    fit = "nominal/fit/demo-000"
    t0 = time.monotonic()
    view = service.watch(run_dir)
    while time.monotonic() - t0 < 120 and launch.running:
        view = service.watch(run_dir)
        if view.states.get(fit, ("",))[0] == "running":
            break
        time.sleep(0.05)
    assert view.states[fit][0] == "running", view.states
    done = service.cancel(run_dir)
    assert done.pids == [launch.pid]
    assert _wait(launch) == 130
    log = (run_dir / LAUNCH_LOG).read_text()
    assert "interrupted: 1 finished task kept in" in log
    st = service.status(run_dir)
    assert st.states["nominal/load"][0] == "done"
    state, message = st.states[fit]
    assert state == "failed" and message.startswith("cancelled")
    assert json.loads((run_dir / "run.json").read_text())["command"][:2] == ["gprpipe", "run"]

    again = launch_rerun(run_dir, jobs=2)
    assert _wait(again) == 0, (run_dir / LAUNCH_LOG).read_text()
    assert service.status(run_dir).counts() == {"done": 5}
    assert len(read_csv_table(run_dir / "nominal" / "scan.csv")[1]) == 5
    assert f"Rerunning 4 tasks: {fit}" in (run_dir / LAUNCH_LOG).read_text()


def test_a_launch_replaces_links_at_its_files_and_writes_nothing_through_them(tmp_path: Path):
    """The TUI's launch files were written through links planted at their names: the spec
    and the run's output landed in files outside the run directory."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    victims = {name: tmp_path / f"victim-{name}" for name in (LAUNCH_SPEC, LAUNCH_LOG)}
    for name, victim in victims.items():
        victim.write_text("mine\n")
        (run_dir / name).symlink_to(victim)
    opts = _options(run_dir)
    opts.steps = ["load"]
    launch = launch_run(QUICKSTART, opts, run_dir)
    assert _wait(launch) == 0, (run_dir / LAUNCH_LOG).read_text()
    assert [v.read_text() for v in victims.values()] == ["mine\n", "mine\n"]
    assert not any((run_dir / name).is_symlink() for name in victims)
    assert json.loads((run_dir / LAUNCH_SPEC).read_text())["kind"] == "run"
    assert "nominal/load" in (run_dir / LAUNCH_LOG).read_text()


def test_a_second_launch_keeps_the_first_launchs_files(tmp_path: Path):
    """A second TUI launch into a folder (its SLURM jobs still queued, say) replaced the
    first launch's spec and log, the record of what it submitted, also when the run
    refused it (a review). A launch sets the earlier files aside as tui-launch.previous.*
    (one generation); a refused one puts them back."""
    from gprpipe.pipeline.store import LAUNCH_PREVIOUS

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    first = {LAUNCH_SPEC: '{"kind": "run"}\n', LAUNCH_LOG: "Submitted 6 tasks to SLURM\n"}
    for name, text in first.items():
        (run_dir / name).write_text(text)
    opts = _options(run_dir)
    opts.overrides = [*opts.overrides, f"datasets.demo.path={tmp_path / 'gone.root'}"]
    refused = launch_run(QUICKSTART, opts, run_dir)
    assert _wait(refused) == 2 and "gone.root" in refused.read_output()
    assert refused.discard() is False  # (the folder is not this launch's to remove)
    assert {n: (run_dir / n).read_text() for n in first} == first
    assert sorted(p.name for p in run_dir.iterdir()) == sorted(first)
    assert "gone.root" in refused.read_output()  # (its output kept for the TUI)
    opts = _options(run_dir)
    opts.steps = ["load"]
    ran = launch_run(QUICKSTART, opts, run_dir)
    assert _wait(ran) == 0, ran.read_output()
    assert not ran.discard()
    assert {n: (run_dir / LAUNCH_PREVIOUS[n]).read_text() for n in first} == first
    assert "nominal/load" in (run_dir / LAUNCH_LOG).read_text()


def test_cli_cancel_stops_a_cli_run(tmp_path: Path, cli):
    """``gprpipe cancel`` stops a ``gprpipe run`` it did not start (found by the lock); the
    fit is made slow (100 optimiser restarts) so that the run is surely still going."""
    run_dir = tmp_path / "run"
    proc = start_cli_subprocess(
        *("run", QUICKSTART, "--steps", "load,fit,limit", "--set", f"base.output={run_dir}"),
        *("--set", "fit.n_restarts=100"),
    )
    t0 = time.monotonic()
    while time.monotonic() - t0 < 120 and proc.poll() is None:
        if service.watch(run_dir).states.get("nominal/fit/demo-000", ("",))[0] == "running":
            break
        time.sleep(0.05)
    code, out, _ = cli("cancel", run_dir)
    assert code == 0 and out.startswith(f"Stopped the run of {run_dir} (pid {proc.pid}).")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert "interrupted: " in err and f"Resume with: gprpipe run {QUICKSTART}" in err
    code, out, _ = cli("cancel", run_dir)
    assert code == 0 and out.strip() == f"Nothing running in {run_dir}."


def test_cancel_signals_the_lock_holder_not_the_pid_an_edited_record_names(tmp_path: Path, cli):
    """`gprpipe cancel` signalled whatever pid the lock's record named: someone who could
    write the run folder made it kill an unrelated process while the run went on (a
    review). The kernel's list of the lock's holders decides which process is the run."""
    import json as _json
    import subprocess

    run_dir = tmp_path / "run"
    proc = start_cli_subprocess(
        *("run", QUICKSTART, "--steps", "load,fit,limit", "--set", f"base.output={run_dir}"),
        *("--set", "fit.n_restarts=100"),
    )
    bystander = subprocess.Popen(["sleep", "300"])
    try:
        t0 = time.monotonic()
        while time.monotonic() - t0 < 120 and proc.poll() is None:
            if service.watch(run_dir).states.get("nominal/fit/demo-000", ("",))[0] == "running":
                break
            time.sleep(0.05)
        lock = run_dir / ".gprpipe.lock"
        record = _json.loads(lock.read_text())
        assert record["pid"] == proc.pid
        with open(lock, "r+") as f:  # the holder's lock stays; its record now lies
            f.truncate(0)
            f.write(_json.dumps({**record, "pid": bystander.pid}) + "\n")
        code, out, _ = cli("cancel", run_dir)
        assert code == 0 and out.startswith(f"Stopped the run of {run_dir} (pid {proc.pid}).")
        proc.communicate(timeout=60)
        assert proc.returncode == 130
        assert bystander.poll() is None  # left alone
    finally:
        bystander.kill()
        if proc.poll() is None:
            proc.kill()


def test_cancel_of_a_lock_held_without_a_record_names_the_holder_of_this_host(tmp_path, cli):
    """A process of this host that is no gprpipe run holds the run's lock (an flock of its
    own): cancel said "in use by gprpipe (pid ? on host ? since ?), on another host" (a
    review). It names the holder's pid, of this host, and signals nothing."""
    import subprocess

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    lock = run_dir / ".gprpipe.lock"
    hold = "import fcntl, sys, time; f = open(sys.argv[1], 'a'); fcntl.flock(f, fcntl.LOCK_EX)"
    holder = subprocess.Popen(
        [sys.executable, "-c", hold + "; print(1, flush=True); time.sleep(60)", str(lock)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "1\n"
        code, out, err = cli("cancel", run_dir)
        assert (code, out) == (1, "") and err.strip() == (
            f"error: {run_dir} is locked by process {holder.pid} of this host that left no "
            "record of itself (no gprpipe run): stop it, then try again."
        )
        assert holder.poll() is None
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.parametrize("pid", ["abc", 10**30, [1], True], ids=["word", "huge", "list", "bool"])
def test_an_edited_pid_in_a_lock_record_or_marker_is_no_internal_error(
    tmp_path: Path, cli, shared_quickstart: Path, pid: object
):
    """A review: a lock record whose pid was no number made `gprpipe cancel` say
    'internal error: ValueError', and a marker whose run_pid was 10**30 (or a list) made
    status, summary, rerun and cancel say 'internal error: OverflowError' (TypeError). A
    pid that names no process is read as none: cancel still stops the lock's holder."""
    import shutil
    import socket
    import subprocess

    run_dir = tmp_path / "run"
    shutil.copytree(shared_quickstart, run_dir, symlinks=True)
    host = socket.gethostname()
    state = run_dir / "nominal" / ".state"
    for done in ("plot.done", "plot.commit"):  # (a done marker stands before a running one)
        (state / done).unlink()
    marker = state / "plot.running"
    marker.write_text(json.dumps({"host": host, "pid": pid, "run_pid": pid, "run_host": host}))
    for command in ("status", "summary"):
        code, out, err = cli(command, run_dir)
        assert code == 0 and "internal error" not in out + err, (command, out, err)
    code, out, err = cli("rerun", run_dir, "--failed")
    assert code == 0 and "internal error" not in out + err, (out, err)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, sys, time\n"
            "f = open(sys.argv[1], 'a')\n"
            "fcntl.flock(f, fcntl.LOCK_EX)\n"
            "print('held', flush=True)\n"
            "time.sleep(300)\n",
            str(run_dir / ".gprpipe.lock"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        record = {"pid": pid, "host": host, "command": "gprpipe run", "since": "now"}
        (run_dir / ".gprpipe.lock").write_text(json.dumps(record) + "\n")
        code, out, err = cli("cancel", run_dir)
        assert code == 0 and out.startswith(f"Stopped the run of {run_dir} (pid {holder.pid})")
        assert holder.wait(timeout=30) != 0
    finally:
        holder.kill()


def test_cancel_stops_the_slurm_jobs_of_a_run_whose_point_config_changed(
    tmp_path: Path, cli, shared_quickstart: Path, monkeypatch: pytest.MonkeyPatch
):
    """A review: `gprpipe cancel` read the run's tasks first, and a point config edited
    since the run (a comment will do) stopped it there with an error, before any scancel;
    `gprpipe run` then refused the folder while its jobs were queued and sent the user
    back to cancel. The jobs (recorded in jobs.json) are cancelled all the same now.
    SLURM's squeue and scancel are stand-ins here that answer and record as SLURM would."""
    import shutil

    from gprpipe.executors.slurm.jobs import JOB_NAME_PREFIX

    run_dir = tmp_path / "run"
    shutil.copytree(shared_quickstart, run_dir, symlinks=True)
    info = json.loads((run_dir / "run.json").read_text())
    (run_dir / "run.json").write_text(json.dumps({**info, "executor": "slurm"}))
    (run_dir / "slurm").mkdir()
    (run_dir / "slurm" / "jobs.json").write_text(
        json.dumps(
            {
                "format": 1,
                "run_dir": str(run_dir.absolute()),
                "submissions": [
                    {
                        "kind": "run",
                        "dry_run": False,
                        "jobs": [{"job_id": "505", "group": "plot", "tasks": ["nominal/plot"]}],
                    }
                ],
            }
        )
    )
    bin_dir, calls = tmp_path / "bin", tmp_path / "scancel.calls"
    bin_dir.mkdir()
    for name, body in (
        ("squeue", f"echo '505_0|PENDING|N/A|n/a|{JOB_NAME_PREFIX}plot'"),
        ("scancel", f'echo "$@" >> {calls}'),
    ):
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    config = run_dir / "nominal" / "config.toml"
    config.write_text(config.read_text() + "# edited\n")
    code, out, err = cli("cancel", run_dir)
    assert code == 0, out + err
    assert calls.read_text() == f"--name={JOB_NAME_PREFIX}plot 505\n"
    assert "Cancelled SLURM jobs: 505" in out
    assert f"Marked nothing failed there: {config}: " in out
    assert "(its tasks: the run's SLURM jobs are cancelled all the same)" in out


def test_a_run_is_not_refused_for_a_status_that_holds_the_lock_for_a_moment(
    tmp_path: Path, shared_quickstart: Path, monkeypatch
):
    """`gprpipe status` took the run's lock (to remove a killed run's containers) also
    for the local engine, which leaves none, and a run started meanwhile was refused: "in
    use by gprpipe status" (7 of 12 runs beside a status loop, a race audit). Status of a
    local run takes no lock; a run waits a moment for a holder that is status or cancel,
    or whose record is empty (a command taking or releasing the lock) or names no holder
    of the lock (a stale record under a process trying the lock), and refuses a run at
    once."""
    import subprocess

    from gprpipe.pipeline import lock

    taken: list[str] = []
    real = service.run_lock
    monkeypatch.setattr(service, "run_lock", lambda d, **kw: taken.append(str(d)) or real(d, **kw))
    assert service.status(shared_quickstart).counts() == {"done": 6}
    assert taken == []
    monkeypatch.undo()

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    path = run_dir / lock.LOCK_NAME
    hold = (  # (a record's pid "self": the holder's own)
        "import fcntl, os, sys, time; f = open(sys.argv[1], 'w'); fcntl.flock(f, "
        "fcntl.LOCK_EX); f.write(sys.argv[2].replace('\"self\"', str(os.getpid()))); "
        "f.flush(); print(1, flush=True); time.sleep(float(sys.argv[3]))"
    )
    for record, seconds, refused in (
        ({"command": "gprpipe status", "pid": 1}, 1.0, False),
        ({}, 1.0, False),
        ({"command": "gprpipe run", "pid": "self", "host": "h", "since": "t"}, 5.0, True),
        ({"command": "gprpipe run", "pid": 1, "host": "h", "since": "t"}, 1.0, False),
    ):
        text = json.dumps(record) if record else ""
        proc = subprocess.Popen(
            [sys.executable, "-c", hold, str(path), text, str(seconds)],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert proc.stdout is not None and proc.stdout.readline() == "1\n"
            t0 = time.monotonic()
            if refused:
                with (
                    pytest.raises(
                        GprpipeError, match=f"is in use by gprpipe run \\(pid {proc.pid} "
                    ),
                    lock.run_lock(run_dir, command="gprpipe run"),
                ):
                    pass
                assert time.monotonic() - t0 < 1.0
            else:
                with lock.run_lock(run_dir, command="gprpipe run") as info:
                    assert info["pid"] == os.getpid()
                assert 0.3 < time.monotonic() - t0 < lock.BRIEF_WAIT
        finally:
            proc.kill()
            proc.wait()


def test_a_reader_never_takes_the_lock_a_run_needs(tmp_path: Path, monkeypatch):
    """is_locked tried the lock itself (a shared flock for a moment); a run starting then
    was refused, naming the stale record of an earlier run: 42 of 2000 starts beside a
    reader loop (a review). Where the kernel lists its locks, the reader only reads."""
    import fcntl

    from gprpipe.pipeline import lock

    run_dir = tmp_path / "run"
    with lock.run_lock(run_dir, command="gprpipe run"):
        pass  # (the lock file, empty)
    tried: list[int] = []
    real = fcntl.flock
    monkeypatch.setattr(fcntl, "flock", lambda fd, op: tried.append(op) or real(fd, op))
    assert lock.is_locked(run_dir) is False
    with lock.run_lock(run_dir, command="gprpipe run"):
        tried.clear()
        assert lock.is_locked(run_dir) is True
    assert lock.is_locked(run_dir) is False
    assert tried == []


def test_a_lock_held_out_of_sight_of_proc_locks_is_still_seen(tmp_path: Path, monkeypatch):
    """/proc/locks leaves out a lock whose holder is in another PID namespace (a container
    with its own /proc, another host): is_locked read its empty list as "free" and a
    summary there suggested a rerun beside the run (a review). A record with no listed
    holder is checked by trying the lock; an empty record is free."""
    import subprocess

    from gprpipe.pipeline import lock

    run_dir = tmp_path / "run"
    with lock.run_lock(run_dir, command="gprpipe run"):
        pass
    hold = (
        "import fcntl, sys, time; f = open(sys.argv[1], 'w'); fcntl.flock(f, fcntl.LOCK_EX);"
        " f.write(sys.argv[2]); f.flush(); print(1, flush=True); time.sleep(30)"
    )
    record = json.dumps({"command": "gprpipe run", "pid": 1})
    proc = subprocess.Popen(
        [sys.executable, "-c", hold, str(run_dir / lock.LOCK_NAME), record],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "1\n"
        assert lock.is_locked(run_dir)
        monkeypatch.setattr(lock, "flock_holders", lambda d, exclusive=False: set())
        assert lock.is_locked(run_dir)  # (out of sight: the record says someone may hold it)
    finally:
        proc.kill()
        proc.wait()
    assert not lock.is_locked(run_dir)  # (the record left, its holder gone: free)
