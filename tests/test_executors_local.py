"""The local executor's warm workers: real runs of the quickstart (load and fit in three
one-mass chunks) through ``gprpipe run``.

A worker runs several tasks (the tasks' own ``done`` markers name fewer processes than
tasks); a task that kills its process (the fault-injection hook SIGKILLs it after writing
``fit.h5``) fails alone, and ``rerun --failed`` redoes it in a new worker; SIGTERM of the
run (the TUI's cancel) stops the workers and marks their tasks failed.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from conftest import (
    QUICKSTART,
    REPO,
    cli_env,
    quickstart_child,
    run_cli_subprocess,
    start_cli_subprocess,
)

from gprpipe.engines import get_engine
from gprpipe.executors import forkserver
from gprpipe.executors.forkserver import _wants_workers
from gprpipe.executors.local import FRESH_ENV, warm_workers_wanted
from gprpipe.io.atomic import CRASH_AFTER
from gprpipe.io.processes import RUN_PID_ENV, alive, identity
from gprpipe.pipeline.state import read_marker

BODY = """
[scan]
masses = [0.030, 0.060, 0.100]
chunk_size = 1
[steps]
run = ["load", "fit"]
"""
CHUNKS = ("fit__demo-000", "fit__demo-001", "fit__demo-002")


@pytest.fixture(scope="module")
def cfg(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return quickstart_child(tmp_path_factory.mktemp("cfg") / "warm.toml", BODY)


def h5_arrays(path: Path) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    with h5py.File(path, "r") as f:
        f.visititems(
            lambda name, obj: (
                out.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None
            )
        )
    return out


def pid_of(point: Path, slug: str, state: str = "done") -> int:
    return int(read_marker(point, slug, state)["pid"])


def test_warm_workers_for_the_local_engine_only(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv(FRESH_ENV, raising=False)
    assert warm_workers_wanted(get_engine("local"))
    assert not warm_workers_wanted(get_engine("podman", image="x"))
    monkeypatch.setenv(FRESH_ENV, "1")
    assert not warm_workers_wanted(get_engine("local"))


def test_prestart_guesses_from_the_command_line_and_a_rerun_from_its_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """``python -m gprpipe`` starts a fork server before the command line is parsed when
    the command will probably run local tasks: never for another executor or engine, a
    dry run, or the rerun of a run recorded with one (a SLURM rerun started one in vain)."""
    monkeypatch.delenv(FRESH_ENV, raising=False)
    assert _wants_workers(["run", "a.toml", "-j", "2"])
    assert not _wants_workers(["run", "a.toml", "--executor", "slurm"])
    assert not _wants_workers(["run", "a.toml", "--set", "base.engine=podman"])
    assert not _wants_workers(["run", "a.toml", "--dry-run"])
    assert not _wants_workers(["status", "runs/a"])
    slurm, local = tmp_path / "slurm run", tmp_path / "local"
    for folder, executor in ((slurm, "slurm"), (local, "local")):
        folder.mkdir()
        (folder / "run.json").write_text(json.dumps({"engine": "local", "executor": executor}))
    assert not _wants_workers(["rerun", str(slurm), "--failed", "--wait"])
    assert not _wants_workers(["rerun", "-j", "2", "--masses", "60MeV", str(slurm)])
    assert _wants_workers(["rerun", str(local), "--failed"])
    assert _wants_workers(["rerun", str(tmp_path / "no run here")])  # the command says why
    monkeypatch.setenv(FRESH_ENV, "1")
    assert not _wants_workers(["rerun", str(local)])


def test_the_guess_reads_the_command_lines_options():
    """The guess reads argv before the command line is imported: its lists of options are
    the command line's (a value option it did not know would be taken for the run folder)."""
    import typer.main

    from gprpipe.cli import app

    commands = typer.main.get_command(app).commands  # type: ignore[attr-defined]

    def value_options(name: str) -> set[str]:
        return {
            o
            for p in commands[name].params
            if p.param_type_name == "option" and not p.is_flag
            for o in p.opts
        }

    assert value_options("rerun") == set(forkserver.RERUN_VALUE_OPTIONS)
    assert {"--engine", "--executor", "--set"} <= value_options("run")


def test_workers_are_reused_and_a_killed_task_fails_alone(cfg: Path, tmp_path: Path):
    run_dir = tmp_path / "run"
    point = run_dir / "nominal"
    code, out, err = run_cli_subprocess(
        "run",
        cfg,
        "--set",
        f"base.output={run_dir}",
        "-j",
        "2",
        env={CRASH_AFTER: "fit.h5"},
        timeout=600,
    )
    assert code == 1, out + err
    assert "failed nominal/fit/merge" in err
    assert "4 ran, 0 cached, 1 failed" in out
    pids = {pid_of(point, s) for s in ("load", *CHUNKS)}
    assert len(pids) <= 2  # four tasks in at most two warm processes
    assert read_marker(point, "fit__merge", "failed")  # its worker was killed; the run went on
    assert (point / "logs" / "fit__merge.log").read_text().startswith("$ ")
    code, out, err = run_cli_subprocess("rerun", run_dir, "--failed", timeout=600)
    assert code == 0, out + err
    assert "Rerunning 1 tasks: nominal/fit/merge" in out
    assert pid_of(point, "fit__merge") not in pids
    # the numbers do not depend on the process: the chunks, run again fresh, agree
    fresh = tmp_path / "fresh"
    code, _, err = run_cli_subprocess(
        "run", cfg, "--set", f"base.output={fresh}", "-j", "2", env={FRESH_ENV: "1"}, timeout=600
    )
    assert code == 0, err
    fpids = {pid_of(fresh / "nominal", s) for s in ("load", *CHUNKS, "fit__merge")}
    assert len(fpids) == 5  # one process per task
    a, b = h5_arrays(point / "fit.h5"), h5_arrays(fresh / "nominal" / "fit.h5")
    assert a.keys() == b.keys() and len(a) > 5
    for k in a:
        if k.endswith("seconds"):  # measured run times
            continue
        assert np.array_equal(a[k], b[k], equal_nan=a[k].dtype.kind in "fc"), k


@pytest.mark.parametrize("target", ["run", "group"])
def test_sigterm_stops_the_workers_and_fails_their_tasks(cfg: Path, tmp_path: Path, target: str):
    """SIGTERM of the run alone (the TUI's cancel) or of its whole process group (which
    also ends the fork server, so the workers' exit codes are lost): the run stops and
    exits 130 with its resume line, never an internal error."""
    run_dir = tmp_path / "run"
    point = run_dir / "nominal"
    proc = start_cli_subprocess(
        "run", cfg, "--set", f"base.output={run_dir}", "-j", "2", session=True
    )
    try:
        deadline = time.monotonic() + 300
        worker = None
        while worker is None:  # a chunk's own 'running' marker: its worker's pid
            assert proc.poll() is None and time.monotonic() < deadline
            for s in CHUNKS:
                info = read_marker(point, s, "running")
                if info.get("pid") and info["pid"] != proc.pid:
                    worker = (s, int(info["pid"]))
            time.sleep(0.01)
        if target == "run":  # the run only, as the TUI's cancel reaches it
            os.kill(proc.pid, signal.SIGTERM)
        else:
            os.killpg(proc.pid, signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, err
    assert "interrupted:" in err and "internal error" not in err
    slug, pid = worker
    with pytest.raises(ProcessLookupError):
        for _ in range(50):  # reaped by the run before it exits
            os.kill(pid, 0)
            time.sleep(0.1)
    states = {
        s: json.loads(p.read_text())["message"]
        for s in CHUNKS
        for p in [point / ".state" / f"{s}.failed"]
        if p.exists()
    }
    if (point / ".state" / f"{slug}.failed").exists() and target == "run":
        assert states[slug] == "cancelled"  # (unless it finished just before the kill)


@pytest.mark.skipif(not forkserver.supported(), reason="fork server: Linux only")
def test_runs_of_one_process_share_one_fork_server(
    cfg: Path, tmp_path: Path, cli, monkeypatch: pytest.MonkeyPatch
):
    """Runs in one process (a notebook calling the run service, the test suite) import the
    numerics once: the second run's workers come from the first run's fork server, which
    stays until the process ends; a run with another environment gets a server of its own."""
    one = ("--set", "scan.masses=[0.060]", "--set", 'steps.run=["load"]')
    forkserver.take_spare(None)  # none left by an earlier test of this process
    code, _, err = cli("run", cfg, *one, "--set", f"base.output={tmp_path / 'a'}")
    assert code == 0, err
    server = forkserver.spare()
    assert server is not None and server.proc.poll() is None
    code, _, err = cli("run", cfg, *one, "--set", f"base.output={tmp_path / 'b'}")
    assert code == 0, err
    assert forkserver.spare() is server and server.proc.poll() is None
    assert pid_of(tmp_path / "b" / "nominal", "load") in server.forked_pids()

    monkeypatch.setenv("GPRPIPE_TEST_OTHER_ENV", "1")  # workers must see the run's env
    code, _, err = cli("run", cfg, *one, "--set", f"base.output={tmp_path / 'c'}")
    assert code == 0, err
    other = forkserver.spare()
    assert other is not None and other is not server
    assert pid_of(tmp_path / "c" / "nominal", "load") in other.forked_pids()
    assert server.proc.wait(10) is not None  # the first one was closed


@pytest.mark.skipif(not forkserver.supported(), reason="fork server: Linux only")
def test_a_kept_fork_server_ends_when_no_run_takes_it(
    cfg: Path, tmp_path: Path, cli, monkeypatch: pytest.MonkeyPatch
):
    """A process that ran once and then idles (a notebook) does not hold the server's
    imports for ever: KEEP_TIMEOUT seconds after its run the kept server is closed and the
    next run starts a new one. A run that took the server in time keeps it."""
    one = ("--set", "scan.masses=[0.060]", "--set", 'steps.run=["load"]')
    forkserver.take_spare(None)
    monkeypatch.setattr(forkserver, "KEEP_TIMEOUT", 1.0)
    code, _, err = cli("run", cfg, *one, "--set", f"base.output={tmp_path / 'a'}")
    assert code == 0, err
    server = forkserver.spare()
    assert server is not None and server.proc.poll() is None
    assert server.proc.wait(10) is not None  # closed about a second later
    assert forkserver.spare() is None
    code, _, err = cli("run", cfg, *one, "--set", f"base.output={tmp_path / 'b'}")
    assert code == 0, err
    fresh = forkserver.spare()
    assert fresh is not None and fresh is not server
    assert pid_of(tmp_path / "b" / "nominal", "load") in fresh.forked_pids()

    taken = forkserver.take_spare(fresh.env)  # a run takes it before its time is up
    assert taken is fresh
    time.sleep(2.0)
    assert fresh.running()  # the expiry was called off
    forkserver.keep(fresh)  # that run ended: the second keep has its own time
    assert fresh.proc.wait(10) is not None and forkserver.spare() is None


def test_alive_says_whether_a_process_has_ended():
    """``alive``: this process yes; no pid, pid 0 (a process group) no; a child that was
    killed and not reaped yet (a zombie) has ended, as has a reaped one."""
    assert alive(os.getpid()) and alive(str(os.getpid()))
    assert not any(alive(p) for p in (None, "", "x", 0, -1))
    child = subprocess.Popen(["sleep", "60"])
    try:
        assert alive(child.pid)
        child.kill()
        gone = time.monotonic() + 5
        while alive(child.pid):  # killed, not reaped: a zombie
            assert time.monotonic() < gone
            time.sleep(0.01)
    finally:
        child.kill()
        child.wait()
    assert not alive(child.pid)


def test_another_users_process_is_alive_only_if_it_is_the_one_named(monkeypatch):
    """A process of another user (kill(pid, 0) is refused: PermissionError, as for a
    non-root user) counted alive whatever its start identity: a pid reused by someone
    else's process made a task of a killed job look running for ever (a review). Its
    /proc entry says whether it is the process named."""
    from gprpipe.io.processes import identity

    real = os.kill

    def refused(pid: int, sig: int) -> None:
        if pid == 1 and sig == 0:
            raise PermissionError(1, "Operation not permitted")
        real(pid, sig)

    monkeypatch.setattr(os, "kill", refused)
    assert alive(1) and alive(1, identity(1))
    assert not alive(1, "0:1")  # (its pid reused: another start)


SIGKILL_MODES = {
    "fork server": {FRESH_ENV: "0", forkserver.FORK_ENV: "1"},
    "spawned workers": {FRESH_ENV: "0", forkserver.FORK_ENV: "0"},  # as where no fork
    "fresh processes": {FRESH_ENV: "1"},
}


@pytest.mark.parametrize("mode", SIGKILL_MODES)
def test_a_run_killed_with_sigkill_leaves_no_worker_writing(tmp_path: Path, mode: str):
    """SIGKILL of the run process alone (the out-of-memory killer, ``kill -9 PID``) releases
    its run directory's lock at once; the process running its fit task would otherwise
    finish it and write fit outputs and a 'done' marker into a directory that a later run
    may hold by then. A worker forked by the fork server is SIGKILLed by that server when
    the run's end of its socket closes; a worker or task process the run started itself
    (no fork server: macOS, ``GPRPIPE_FORK_SERVER=0``; ``GPRPIPE_FRESH_PROCESSES=1``)
    SIGKILLs itself when the run is no longer its parent. The next run redoes the task."""
    if mode == "fork server" and not forkserver.supported():
        pytest.skip("fork server: Linux only")
    masses = ", ".join(f"{0.020 + 0.001 * i:.3f}" for i in range(111))
    cfg = quickstart_child(
        tmp_path / "slow.toml",
        f'[scan]\nmasses = [{masses}]\nchunk_size = 200\n[steps]\nrun = ["load", "fit"]\n',
    )
    run_dir = tmp_path / "run"
    point = run_dir / "nominal"
    proc = start_cli_subprocess(
        "run",
        cfg,
        "--set",
        f"base.output={run_dir}",
        env=SIGKILL_MODES[mode],
        session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 300
        worker = 0
        while not worker:  # the fit task's own 'running' marker: its process's pid
            assert proc.poll() is None and time.monotonic() < deadline
            info = read_marker(point, "fit__demo-000", "running")
            if info.get("pid") and info["pid"] != proc.pid:
                worker = int(info["pid"])
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)  # the run only: its fork server and worker stay
        proc.wait()
        gone = time.monotonic() + 10
        while alive(worker):  # a 111-mass fit takes seconds: killed long before its end
            assert time.monotonic() < gone, f"the task process {worker} outlived its run"
            time.sleep(0.02)
        assert not (point / ".state" / "fit__demo-000.done").exists()
        assert not (point / "parts" / "fit" / "demo-000.h5").exists()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    if mode != "fork server":
        return  # the rerun below is the same in every mode
    code, out, err = run_cli_subprocess("run", cfg, "--set", f"base.output={run_dir}")
    assert code == 0, out + err
    assert read_marker(point, "fit__demo-000", "done")["pid"] != worker
    assert (point / "fit.h5").exists() and (point / "parts" / "fit" / "demo-000.h5").exists()


def test_a_worker_commits_nothing_once_the_run_that_sent_its_task_has_gone(
    shared_quickstart: Path, tmp_path: Path
):
    """A worker forked by the fork server is SIGKILLed by that server once its run dies;
    on a loaded machine the server took seconds to be scheduled and the worker finished
    its fit task meanwhile, writing outputs and a 'done' marker into a folder whose lock
    the run's death had released (CI, the test above). A worker now checks before each
    write it renames into place that the run which sent the task lives, and else ends
    itself with nothing renamed; with the run alive the same request runs as before."""
    run_dir = tmp_path / "run"
    shutil.copytree(shared_quickstart, run_dir, symlinks=True)
    point = run_dir / "nominal"
    state = point / ".state"
    done = (state / "fit__demo-000.done").read_text()
    task = ["step", "fit", "--point-dir", str(point), "--part", "demo-000"]
    log = point / "logs" / "fit__demo-000.log"
    logged = log.read_text()
    ended = subprocess.Popen(["sleep", "60"])
    gone = [ended.pid, identity(ended.pid)]  # a run that has gone (even if its pid is reused)
    ended.kill()
    ended.wait()

    def ask(run: list[object]) -> tuple[str, int]:
        env = {k: v for k, v in cli_env().items() if k != RUN_PID_ENV}
        worker = subprocess.Popen(
            [sys.executable, "-m", "gprpipe.executors.worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
            cwd=REPO,  # (this checkout's package, as the CLI's)
        )
        request = {"argv": task, "log": str(log), "cwd": str(tmp_path), "run": run}
        answer, _ = worker.communicate(json.dumps(request) + "\n", timeout=120)
        return answer, worker.returncode

    answer, code = ask(gone)
    assert (answer, code) == ("", -signal.SIGKILL)
    assert (state / "fit__demo-000.done").read_text() == done  # not even 'running' written
    assert log.read_text() == logged  # nor its log replaced
    assert sorted(p.name for p in state.iterdir()) == sorted(
        p.name for p in (shared_quickstart / "nominal" / ".state").iterdir()
    )  # and no temporary file left
    answer, code = ask([os.getpid(), identity(os.getpid())])
    assert code == 0 and json.loads(answer)["code"] == 0
    assert read_marker(point, "fit__demo-000", "done")["message"] == "cached"


def test_the_processes_a_task_forks_commit_while_its_run_lives(tmp_path: Path):
    """A task process that ends with its run (``end_with``: the spawned workers and fresh
    task processes) renames a write into place only while that run lives; the figure
    workers it forks inherit that condition, not its parent: checked as "the run is my
    parent", it killed every figure worker at its first figure (a review: the plot step
    failed with BrokenProcessPool where there is no fork server)."""
    script = tmp_path / "fork.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import os
            from gprpipe.io.atomic import atomic_write_text
            from gprpipe.io.processes import end_with

            end_with(os.getppid())  # this test's process stands for the run
            child = os.fork()
            if child == 0:
                atomic_write_text({str(tmp_path / "child.txt")!r}, "child")
                os._exit(0)
            _, status = os.waitpid(child, 0)
            atomic_write_text({str(tmp_path / "parent.txt")!r}, str(status))
            """
        )
    )
    env = cli_env({"PYTHONPATH": str(REPO)})  # (this checkout's package, as the CLI's)
    done = subprocess.run([sys.executable, str(script)], env=env, timeout=60)
    assert done.returncode == 0
    assert (tmp_path / "child.txt").read_text() == "child"
    assert (tmp_path / "parent.txt").read_text() == "0"


def test_the_plot_step_draws_with_figure_workers_where_no_fork_server(tmp_path: Path):
    """Without a fork server (macOS, ``GPRPIPE_FORK_SERVER=0``) the plot task runs in a
    spawned worker that ends with its run, and forks figure workers (``-j 2``): the
    quickstart with its figures ends done (it failed at the plot step: the review of the
    check above)."""
    run_dir = tmp_path / "run"
    code, out, err = run_cli_subprocess(
        "run",
        QUICKSTART,
        "-j",
        "2",
        "--set",
        f"base.output={run_dir}",
        "--set",
        'plot.formats=["png"]',
        env={FRESH_ENV: "0", forkserver.FORK_ENV: "0"},
    )
    assert code == 0, out + err
    assert read_marker(run_dir / "nominal", "plot", "done")
    assert len(list((run_dir / "nominal" / "plots").glob("*.png"))) >= 5


def _orphaned_marker(point: Path, slug: str, task_pid: int) -> None:
    """A 'running' marker of ``slug`` as a killed run leaves it: its run (a pid that has
    ended) on this host, its task process ``task_pid`` still running."""
    import socket

    from gprpipe.pipeline.state import marker, write_state

    gone = subprocess.Popen(["true"])
    gone.wait()
    launch = {"run_pid": gone.pid, "run_host": socket.gethostname(), "container": ""}
    write_state(point, slug, "running", launch=launch)
    path = marker(point, slug, "running")
    info = {**json.loads(path.read_text()), "pid": task_pid, "pid_started": identity(task_pid)}
    path.write_text(json.dumps(info) + "\n")


def test_a_marker_whose_pid_was_reused_names_no_live_task(tmp_path: Path):
    """A 'running' marker was judged by its pid alone: after the task died and another
    process got its pid (a reboot, a long-lived host), status showed the task running for
    ever and rerun --failed passed it by. The process's start (boot id, start time) is
    recorded beside the pid and compared."""
    from gprpipe.pipeline.state import marker, read_marker, write_state
    from gprpipe.pipeline.store import dead_reason

    point = tmp_path / "p"
    write_state(point, "load", "running")  # this process: alive
    assert dead_reason(read_marker(point, "load", "running")) == ""
    path = marker(point, "load", "running")
    info = json.loads(path.read_text())
    assert info["pid"] == os.getpid() and info["pid_started"] == identity(os.getpid())
    path.write_text(json.dumps({**info, "pid_started": info["pid_started"] + "0"}))
    assert dead_reason(read_marker(point, "load", "running")) == (
        "its process ended without a result (killed?)"
    )


def test_a_task_still_ending_in_a_killed_run_is_waited_for(tmp_path: Path):
    """A run that takes over from a killed one starts a task of that run again only once
    its process there has ended (it kills itself within about a second), so that the two
    never write the task's outputs at the same time; one that does not end within
    ORPHAN_WAIT is named and the task starts anyway."""
    from conftest import QUICKSTART, run_cli_here

    from gprpipe.pipeline.state import read_marker
    from gprpipe.pipeline.store import wait_for_orphan

    run_dir = tmp_path / "run"
    point = run_dir / "nominal"
    args = ("run", QUICKSTART, "--steps", "load", "--set", f"base.output={run_dir}")
    code, _, err = run_cli_here(*args)
    assert code == 0, err
    started = time.time()
    orphan = subprocess.Popen(["sleep", "1.5"])  # the killed run's load task, ending
    try:
        _orphaned_marker(point, "load", orphan.pid)
        code, out, err = run_cli_here(*args, "--force")
        assert code == 0, out + err
        assert orphan.poll() is not None  # ended before the new run's load task started
        assert read_marker(point, "load", "done")["time"] >= started + 1.5
        assert "killed run" not in err
        stuck = subprocess.Popen(["sleep", "30"])
        try:
            _orphaned_marker(point, "load", stuck.pid)
            info = read_marker(point, "load", "running")
            why = wait_for_orphan(info, timeout=0.2)
            assert why.startswith(f"process {stuck.pid} of a killed run still runs this task")
        finally:
            stuck.kill()
            stuck.wait()
        assert wait_for_orphan(info, timeout=0.2) == ""  # ended: nothing to wait for
    finally:
        orphan.kill()
        orphan.wait()


def test_ctrl_c_is_taken_between_steps_of_the_run_loop_not_where_it_lands(tmp_path: Path):
    """Ctrl-C raised KeyboardInterrupt wherever the run's main thread was; inside
    concurrent.futures.wait it left a future's lock held, and the run hung for ever in
    its pool's shutdown (CI, test_ctrl_c_while_the_figures_are_drawn). A signal now sets
    a flag the loop checks: code it lands in (here the observer's tick) runs on, the run
    stops as Ctrl-C stops it, and the program's own handler comes back."""
    from conftest import QUICKSTART

    from gprpipe.pipeline import service

    ticks: list[bool] = []

    class Observer(service.RunObserver):
        def tick(self, running) -> None:
            if not ticks:
                ticks.append(False)
                os.kill(os.getpid(), signal.SIGINT)
                time.sleep(0.2)  # the signal is handled here
                ticks[0] = True  # reached: no KeyboardInterrupt inside the tick

    before = signal.getsignal(signal.SIGINT)
    opts = service.RunOptions(jobs=1, overrides=[f"base.output={tmp_path / 'run'}"])
    with pytest.raises(service.Interrupted, match="interrupted: "):
        service.run(QUICKSTART, opts, Observer())
    assert ticks == [True]
    assert signal.getsignal(signal.SIGINT) is before


def test_a_task_is_judged_by_its_marker_as_on_slurm(
    tmp_path: Path, shared_quickstart: Path, monkeypatch: pytest.MonkeyPatch
):
    """A review: the local executor judged a task by its exit code, the SLURM job by its
    marker. A task killed after it wrote its done marker (its outputs committed) was
    failed locally and done on SLURM; an engine command that exited 0 and ran nothing
    was done locally (its marker still 'running'). Both executors now go by the marker."""
    import shutil

    from conftest import QUICKSTART, run_cli_here

    from gprpipe.engines.local import LocalEngine
    from gprpipe.executors.local import run_local
    from gprpipe.pipeline.state import read_state
    from gprpipe.pipeline.store import load_run_info, tasks_of_run

    run_dir = tmp_path / "run"
    code, out, err = run_cli_here(
        "run", QUICKSTART, "--steps", "load", "--set", f"base.output={run_dir}",
        env={CRASH_AFTER: "load.done"},  # killed right after its done marker
    )  # fmt: skip
    assert code == 0, out + err
    assert read_state(run_dir / "nominal", "load") == (
        "done",
        read_state(run_dir / "nominal", "load")[1],
    )
    assert "1 ran, 0 cached, 0 failed" in out, out

    class RunsNothing(LocalEngine):
        def command(self, task, *, run_dir, env, check_paths=True):  # type: ignore[override]
            return ["true"]

    copy = tmp_path / "copy"
    shutil.copytree(shared_quickstart, copy, symlinks=True)
    tasks, configs = tasks_of_run(load_run_info(copy))
    load = next(t for t in tasks if t.step == "load")
    monkeypatch.setenv(FRESH_ENV, "1")  # a process per task, from the engine's command
    report = run_local([load], configs, RunsNothing(), run_dir=copy, force=True)
    why = "exited 0 without a done marker: the task did not run"
    assert report.outcomes[load.id].state == "failed"
    assert read_state(copy / "nominal", "load") == ("failed", why)


@pytest.mark.skipif(not forkserver.supported(), reason="fork server: Linux only")
def test_a_worker_of_a_fork_server_that_died_is_waited_for():
    """The fork server killed (out of memory, a stray kill -9) while a worker lived: the
    executor's ``kill(); wait()`` of that worker raised TimeoutExpired at once (the dead
    server answers nothing), and the run stopped with "internal error: TimeoutExpired"
    (a review). The worker is waited for as a process now."""
    import signal

    server = forkserver.ForkServer(forkserver.worker_env())
    try:
        worker = server.fork()
        pid = server.pid_of(worker.token, 60)
        assert pid is not None and worker.poll() is None
        os.kill(server.proc.pid, signal.SIGKILL)
        server.proc.wait(10)
        deadline = time.monotonic() + 10
        while server.alive and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not server.alive
        worker.kill()
        assert isinstance(worker.wait(), int)
    finally:
        server.close(at_once=True)


def test_the_tail_of_a_huge_log_reads_its_end_only(tmp_path: Path):
    """The last lines of a crashed task's log (its failed message): the whole log was read
    into memory, twice, however large (a review); now its last 64 kB."""
    from gprpipe.executors.local import tail

    log = tmp_path / "task.log"
    with log.open("w") as fh:
        for i in range(300_000):  # about 5 MB
            fh.write(f"line {i}\n")
    assert tail(log, 3) == "line 299997\nline 299998\nline 299999"
    assert tail(log, 10**6).splitlines()[-1] == "line 299999"
    assert len(tail(log, 10**6)) < 70_000
    assert tail(tmp_path / "none.log") == ""


def test_a_failure_of_several_lines_is_kept_whole_in_its_marker(
    shared_quickstart: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """A review: a task whose error held several lines kept them in its marker, and the
    summary showed the last ("second line"), not the cause. The marker holds one line."""
    import shutil

    from gprpipe.pipeline import service
    from gprpipe.pipeline.state import read_state
    from gprpipe.steps import runner

    def broken(step):
        def run(ctx):
            raise RuntimeError("injected\nsecond line")

        return run

    copy = tmp_path / "copy"
    shutil.copytree(shared_quickstart, copy, symlinks=True)
    monkeypatch.setattr(runner, "step_function", broken)
    assert runner.run_task(copy / "nominal", "load", force=True) == 1
    why = "internal error in step load: RuntimeError: injected; second line"
    assert read_state(copy / "nominal", "load") == ("failed", why)
    lines = service.summarise(copy)
    assert any(why in line for line in lines), lines


def test_a_task_run_by_hand_beside_a_run_is_refused(shared_quickstart: Path, tmp_path: Path):
    """A review: ``gprpipe step`` run by hand while a run held the lock of its run
    directory ran, clearing and committing the outputs the run's own task was writing.
    It is refused; the run's own task processes (here: naming the run's process) are not."""
    import shutil

    from conftest import run_cli_here

    from gprpipe.io.processes import RUN_PID_ENV
    from gprpipe.pipeline.lock import run_lock

    copy = tmp_path / "copy"
    shutil.copytree(shared_quickstart, copy, symlinks=True)
    point = copy / "nominal"
    before = (point / "load.h5").stat().st_mtime_ns
    with run_lock(copy, command="gprpipe run q.toml"):
        code, _, err = run_cli_subprocess("step", "load", "--point-dir", point, "--force")
        assert code == 1 and err.startswith(f"error: {copy} is in use by gprpipe run q.toml (pid")
        assert err.rstrip().endswith(
            f"a task run by hand beside it would write the same outputs; wait for it to "
            f"finish (or stop it: gprpipe cancel {copy}), then run the task."
        ), err
        code, _, err2 = run_cli_here("step", "load", "--point-dir", point, "--force")
        assert code == 1 and err2 == err  # the command line's own form says the same
        assert (point / "load.h5").stat().st_mtime_ns == before
        code, _, err = run_cli_subprocess(
            "step", "load", "--point-dir", point, "--force", env={RUN_PID_ENV: str(os.getpid())}
        )
        assert code == 0, err
    assert (point / "load.h5").stat().st_mtime_ns != before
    code, _, err = run_cli_subprocess("step", "load", "--point-dir", point, "--force")
    assert code == 0, err  # no run holds it


def test_a_run_ends_after_its_container_watchdog(shared_quickstart: Path, tmp_path: Path):
    """A review: a run closed its container watchdog's pipe and returned, giving up its
    lock while the watchdog still looked for containers by the folder's label, which the
    next run of the folder gives its own containers too. The run waits for it."""
    import shutil

    from gprpipe.engines.local import LocalEngine
    from gprpipe.executors.local import run_local
    from gprpipe.pipeline.store import load_run_info, tasks_of_run

    mark = tmp_path / "watchdog-done"

    class Watched(LocalEngine):
        def watchdog_argv(self, run_dir):  # type: ignore[override]
            return [
                "-c",
                f"import sys, time; sys.stdin.read(); time.sleep(1.0); open({str(mark)!r}, 'w')",
            ]

    copy = tmp_path / "copy"
    shutil.copytree(shared_quickstart, copy, symlinks=True)
    tasks, configs = tasks_of_run(load_run_info(copy))
    load = next(t for t in tasks if t.step == "load")
    report = run_local([load], configs, Watched(), run_dir=copy, force=True)
    assert report.outcomes[load.id].state == "done"
    assert mark.exists()
